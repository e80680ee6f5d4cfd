"""Measure a trained V3 candidate and write the shipped file and its record (issue 20).

Takes the model ``v3_recipe.py --save`` wrote (trained on the 80 % side of the
duplicate-aware stratified 80/20 split, ``random_state=0``, without the
bundled sample's images) and, on the images it never saw:

* the 20 % side (accuracy, macro-F1, per-class recall; with and without TTA);
* splits that side in two halves, stratified: the first calibrates the LAC
  conformal thresholds (MAPIE) and the lab-shift threshold
  (:func:`leukosk.domain.calibrate_lab_shift`, folders of 100), the second
  measures them: the coverage of the sets, and how often random 100-image
  folders of unseen PBC images are flagged as another lab; folders of one
  class each and patient-like differentials show what the make-up of a
  folder does to the lab-shift score;
* the bundled sample (160 images);
* each ``--lab`` folder: accuracy on its classes with no label and no setting,
  its lab-shift score and how often random folders of 100 (or all, where
  fewer) of its images are flagged, and ten-shot adaptation
  (``few_shot_classifier`` from this model, 5 draws);
* prediction throughput from JPEG files on this machine, against the shipped
  ``--baseline`` model in the same run.

The model is then saved in float16 with its lab-shift threshold; its SHA-256
and everything above go to ``--record`` (JSON), and the accuracies, as
records of the provenance table, to ``--provenance`` (by default
``docs/results/shipped_models.json``; see :func:`table_records`).

    python benchmarks/ship_v3.py ../shared/data/PBC_dataset_normal_DIB \\
        --model v3.safetensors --lab ../shared/data/other_labs/tecom \\
        --out leukosk/pretrained/pbc_vgg19bn_w375_64px_cell_v3.safetensors \\
        --record docs/results/v3_record.json
"""

import argparse
import hashlib
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _common import (add_record_options, make_record, pick_device, resolve_machine,
                     script_command, write_records)
from _records import RESULTS_DIR
from sklearn.metrics import accuracy_score, f1_score, recall_score
from sklearn.model_selection import train_test_split

from leukosk import VGG19LeukocyteClassifier, load_pretrained
from leukosk.datasets import PBCDataWarning, load_pbc
from leukosk.datasets import sample_folder
from leukosk.domain import LabShiftMonitor, calibrate_lab_shift
from leukosk.model_selection import (few_shot_scores, score_present_classes,
                                     stratified_group_split)
from leukosk.protocols import few_shot_classifier
from leukosk.uncertainty import ConformalSets, conformalize


def accuracy_record(clf, images, target):
    out = {}
    for tta in (False, True):
        pred = clf.set_params(tta=tta).predict(images)
        out["tta" if tta else "plain"] = {
            "accuracy": round(accuracy_score(target, pred), 4),
            "macro_f1": round(f1_score(target, pred, average="macro"), 4),
            "recall": dict(zip(clf.classes_.tolist(), np.round(recall_score(
                target, pred, average=None, labels=clf.classes_), 3).tolist()))}
    clf.set_params(tta=False)
    return out


def conformal_record(clf, X_cal, y_cal, X_ev, y_ev, levels=(0.9, 0.95)):
    """LAC thresholds fitted on ``X_cal`` (MAPIE) and their coverage on ``X_ev``."""
    conformal = ConformalSets.from_mapie(conformalize(clf, X_cal, y_cal,
                                                      confidence_level=list(levels)))
    proba = clf.predict_proba(X_ev)

    def coverage(level):
        sets = conformal.predict_set(proba, level)
        return round(float(np.mean([label in clf.classes_[row].tolist()
                                    for label, row in zip(y_ev, sets)])), 4)
    return {"thresholds": conformal.thresholds,
            "coverage_evaluation": {str(level): coverage(level) for level in levels}}


def flagged(clf, images, threshold, n_images=100, n_folders=200, seed=0):
    """Share of random folders of ``n_images`` (all, if fewer) scored above threshold."""
    with LabShiftMonitor(clf, per_image=True) as monitor:
        clf.predict_proba(images)
    rng = np.random.default_rng(seed)
    n = min(n_images, len(images))
    scores = np.array([monitor.subset_score(rng.choice(len(images), n, replace=False))
                       for _ in range(n_folders if n < len(images) else 1)])
    return {"n_images_per_folder": n, "n_folders": len(scores),
            "flagged": round(float(np.mean(scores > threshold)), 4),
            "score_median": round(float(np.median(scores)), 4),
            "score_whole_folder": round(monitor.score, 4)}


#: A patient-like differential of 100 white cells (a healthy adult's, roughly).
PATIENT_MIX = {"neutrophil": 60, "lymphocyte": 30, "monocyte": 6, "eosinophil": 3,
               "basophil": 1}


def composition(clf, images, target, threshold, seed=0):
    """Folders of unseen PBC images whose make-up is not PBC's: one class
    each (100 images), and a patient-like differential (50 folders)."""
    with LabShiftMonitor(clf, per_image=True) as monitor:
        clf.predict_proba(images)
    rng = np.random.default_rng(seed)
    single = {str(c): round(monitor.subset_score(rng.choice(
        np.flatnonzero(target == c), min(100, int((target == c).sum())), replace=False)), 4)
        for c in np.unique(target)}
    mixed = [monitor.subset_score(np.concatenate([
        rng.choice(np.flatnonzero(target == c), n, replace=False)
        for c, n in PATIENT_MIX.items()])) for _ in range(50)]
    return {"single_class_scores": single,
            "single_class_flagged": sorted(c for c, v in single.items() if v > threshold),
            "patient_mix": PATIENT_MIX,
            "patient_mix_flagged": round(float(np.mean(np.array(mixed) > threshold)), 4),
            "patient_mix_score_max": round(float(np.max(mixed)), 4)}


def throughput(clf, files, repeats=3):
    clf.predict_proba(files[:64])  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        clf.predict_proba(files)
        times.append(time.perf_counter() - start)
    return len(files) / float(np.median(times))


#: How the provenance table names V3 (a candidate is named so only once shipped).
V3_MODEL = "V3 (PBC_VGG19BN_W375_64PX_CELL_V3, default)"


def table_records(record, machine, command, model=V3_MODEL, prefix="v3", date=None):
    """The provenance-table records of a ``--record`` JSON: the 80/20 test
    side and the bundled sample (with and without TTA), and each lab (out of
    the box with and without TTA, and ten-shot with TTA)."""
    common = dict(machine=machine, source=command, date=date)
    out = []
    for key, data, split, n in (
            ("pbc_test", "PBC development part", "80/20, test part (never trained on)",
             record["n_test"]),
            ("bundled_sample", "bundled sample", "all of it (kept out of training)", 160)):
        for tta in (False, True):
            scores = record[key]["tta" if tta else "plain"]
            name = {"pbc_test": "pbc-test", "bundled_sample": "sample"}[key]
            out.append(make_record(f"{prefix}-{name}" + ("-tta" if tta else ""),
                                   model=model, data=data, split=split, n=n, tta=tta,
                                   accuracy=scores["accuracy"],
                                   macro_f1=scores["macro_f1"], **common))
    for key in (k for k in record if k.startswith("lab:")):
        lab, scores = key[4:], record[key]
        data = f"{lab} set (another lab, {scores.get('n_classes', 5)} classes)"
        # Records written before these keys existed are the tecom set's: 300
        # images in 5 classes, 260 left to test after a draw of 10 per class
        # (its single basophil always left to test).
        n = scores.get("n_images", 300)
        for tta in (False, True):
            s = scores["tta" if tta else "plain"]
            out.append(make_record(f"{prefix}-{lab}" + ("-tta" if tta else ""),
                                   model=f"{model}, no setting", data=data,
                                   split="all of it", n=n, tta=tta,
                                   accuracy=s["accuracy"],
                                   balanced_accuracy=s["balanced_accuracy"], **common))
        shots = scores["ten_shot_tta"]
        out.append(make_record(
            f"{prefix}-{lab}-ten-shot",
            model=f"few_shot_classifier() from {model.split(' ')[0]}, 10 images per class, "
                  f"{shots.get('draws', 5)} draws (mean)",
            data=data, split="the rest of it after each draw",
            n=shots.get("n_test", 260), tta=True,
            accuracy=shots["accuracy_mean"], accuracy_std=shots["accuracy_std"],
            balanced_accuracy=shots["balanced_accuracy_mean"], **common))
        if "lab_shift" in scores:
            out.append(lab_shift_record(f"{prefix}-{lab}-lab-shift", model, data, "all of it",
                                        n, scores["lab_shift"], record, common))
    conformal = record.get("conformal", {}).get("coverage_evaluation")
    if conformal:
        out.append(make_record(
            f"{prefix}-pbc-conformal", model=f"{model}, its stored conformal thresholds",
            data="PBC development part",
            split=f"80/20, test part: the {record['n_evaluation']:,} images not used to "
                  "fit the thresholds", n=record["n_evaluation"], tta=False, accuracy=None,
            rates={f"coverage-{float(level) * 100:g}": v for level, v in conformal.items()},
            **common))
    if "lab_shift" in record:
        out.append(lab_shift_record(
            f"{prefix}-pbc-lab-shift", model, "PBC development part",
            f"80/20, test part: the {record['n_evaluation']:,} images not used to fit the "
            "thresholds", record["n_evaluation"], record["lab_shift"]["pbc_evaluation_half"],
            record, common))
    return out


def lab_shift_record(id, model, data, split, n, shift, record, common):
    """The lab-shift warning on random folders of a data set: the share of
    folders flagged (a rate), the median score and its ratio to the threshold."""
    threshold = record["lab_shift"]["threshold"]
    return make_record(
        id, model=f"{model}, lab-shift warning on {shift['n_folders']} random folders "
                  f"of {shift['n_images_per_folder']} images", data=data, split=split, n=n,
        tta=False, accuracy=None, rates={"flagged": shift["flagged"]},
        values={"score-median": shift["score_median"], "threshold": threshold,
                "times-threshold": round(shift["score_median"] / threshold, 1)}, **common)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir")
    p.add_argument("--model", required=True)
    p.add_argument("--lab", action="append", default=[])
    p.add_argument("--out", required=True)
    p.add_argument("--record", required=True)
    p.add_argument("--baseline", default="PBC_VGG19BN_W25_64PX_V2")
    p.add_argument("--draws", type=int, default=5)
    add_record_options(p, default=str(RESULTS_DIR / "shipped_models.json"),
                       option="--provenance")
    args = p.parse_args(argv)
    machine = resolve_machine(args.machine)
    torch.manual_seed(0)
    clf = VGG19LeukocyteClassifier.load(args.model, device="cpu", verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PBCDataWarning)
        data = load_pbc(args.data_dir, image_size=clf.decode_size_, drop_duplicates=True,
                        verbose=False)
        sample = load_pbc(sample_folder(), image_size=None, cache=False, verbose=False)
        labs = {Path(lab).name: load_pbc(lab, image_size=None, cache=False, verbose=False)
                for lab in args.lab}
    _, test = stratified_group_split(data.target, groups=data.groups, test_size=0.2,
                                     random_state=0)
    calibration, evaluation = train_test_split(test, test_size=0.5, random_state=0,
                                               stratify=data.target[test])
    X, y = data.images, data.target
    record = {"model": Path(args.model).name, "device": pick_device("cpu")[1],
              "split": "duplicate-aware stratified 80/20 split of the PBC development "
                       "part (random_state=0); the 20 % side was never trained on",
              "n_test": len(test), "n_calibration": len(calibration),
              "n_evaluation": len(evaluation),
              "pbc_test": accuracy_record(clf, X[test], y[test]),
              "bundled_sample": accuracy_record(clf, sample.images, sample.target)}
    print(json.dumps(record["pbc_test"]))
    record["conformal"] = conformal_record(clf, X[calibration], y[calibration],
                                           X[evaluation], y[evaluation])
    shift = calibrate_lab_shift(clf, X[calibration], n_images=100, n_folders=200)
    record["lab_shift"] = {
        "threshold": round(shift.threshold, 5),
        "calibration": {"quantile": shift.quantile, "margin": shift.margin,
                        "score_max": round(float(shift.scores.max()), 5)},
        "pbc_evaluation_half": flagged(clf, X[evaluation], shift.threshold),
        "bundled_sample": flagged(clf, sample.images, shift.threshold),
        "pbc_test_composition": composition(clf, X[test], y[test], shift.threshold)}
    print(json.dumps(record["lab_shift"]))
    v3_path = Path(args.model)
    for name, lab in labs.items():
        result = {}
        for tta in (False, True):
            scored = score_present_classes(clf.set_params(tta=tta), lab.images, lab.target)
            result["tta" if tta else "plain"] = {
                "accuracy": round(scored.accuracy, 4),
                "balanced_accuracy": round(scored.balanced_accuracy, 4)}
        clf.set_params(tta=False)
        result["lab_shift"] = flagged(clf, lab.images, shift.threshold)
        start = time.perf_counter()
        shots = few_shot_scores(few_shot_classifier(str(v3_path), random_state=0),
                                lab.images, lab.target, k=10, n_draws=args.draws,
                                random_state=0)
        result["n_images"], result["n_classes"] = len(lab.target), len(np.unique(lab.target))
        result["ten_shot_tta"] = {
            "draws": args.draws, "n_test": int(np.mean(shots.n_test)),
            "accuracy_mean": round(shots.accuracy_mean, 4),
            "accuracy_std": round(shots.accuracy_std, 4),
            "balanced_accuracy_mean": round(shots.balanced_accuracy_mean, 4),
            "seconds_per_draw": round((time.perf_counter() - start) / args.draws, 1)}
        record[f"lab:{name}"] = result
        print(name, json.dumps(result))
    files = [str(f) for f in sorted(sample_folder().glob("*/*.jpg"))] * 3
    baseline = load_pretrained(args.baseline, device="cpu")
    ours, theirs = throughput(clf, files), throughput(baseline, files)
    record["throughput"] = {"images": len(files), "what": "predict_proba on JPEG files "
                            "(decoding included), no TTA, median of 3",
                            "images_per_s": round(ours, 1),
                            "baseline": args.baseline,
                            "baseline_images_per_s": round(theirs, 1),
                            "ratio": round(ours / theirs, 3)}
    clf.lab_shift_threshold_ = shift.threshold
    out = Path(args.out)
    clf.save(out, dtype=torch.float16)
    shipped = VGG19LeukocyteClassifier.load(out, device="cpu", verbose=0)
    record["file"] = {"name": out.name, "bytes": out.stat().st_size,
                      "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
                      "float16_test_accuracy": round(accuracy_score(
                          y[test], shipped.predict(X[test])), 4)}
    record["history"] = {"epochs": len(clf.history_),
                         "fit_minutes": round(sum(clf.history_[:, "dur"]) / 60, 1),
                         "final_train_loss": round(float(clf.history_[-1, "train_loss"]), 4)}
    Path(args.record).write_text(json.dumps(record, indent=2, default=str))
    print(json.dumps(record, indent=2, default=str))
    command = script_command(__file__, "DATA_DIR --model MODEL",
                             *[f"--lab {Path(lab).name.upper()}_DIR" for lab in args.lab],
                             f"(record: {args.record})")
    write_records(args.provenance, table_records(record, machine, command),
                  title="The shipped models and their recipes")


if __name__ == "__main__":
    main()
