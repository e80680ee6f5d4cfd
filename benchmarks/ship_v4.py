"""Measure a trained V4 candidate and write the shipped file and its record (issue 28).

Takes the model ``v4_recipe.py --save`` wrote (trained on the 80 % sides of the
duplicate-aware stratified 80/20 splits, ``random_state=0``, of PBC without the
bundled sample's images and of the second source) and, on images it never saw:

* PBC's 20 % side (accuracy, macro-F1, recall; with and without TTA) and the
  second source's 20 % side (the plain 8-class answer, the classes present,
  how often its cells are called a class that source lacks);
* each side split in two stratified halves: the first halves calibrate the
  conformal thresholds (PBC) and both lab-shift thresholds (score and
  unsureness, folders of 100 drawn within each source,
  :func:`leukosk.domain.calibrate_lab_shift`); the second halves measure them
  (coverage; the share of random 100-image folders of each source flagged);
* each ``--lab`` folder: classes present and 8-class answer, how often it is
  flagged, ten-shot ``few_shot_classifier`` (``--draws`` draws);
* the cross-lab table (:func:`leukosk.labs.evaluate_labs`, on the file
  shipped) for each ``--lab`` and for the evaluation halves of PBC and of the
  second source (labs the model knows): the review loop as ``leukosk adapt``
  runs it (10 reviewed cells per class, the held-back check), scored on the
  cells not reviewed;
* prediction throughput from JPEG files against ``--baseline`` in the same run.

Before calibrating, each training lab's own statistics are recorded on its
training images (:func:`leukosk.domain.fit_lab_references`), so that a
folder's lab-shift score is its divergence from the nearest training lab.
The model is saved in float16 with its two lab-shift thresholds and those
statistics; its SHA-256
and everything above go to ``--record`` (JSON), and its records to
``--provenance`` (by default ``docs/results/v4.json``).

    python benchmarks/ship_v4.py ../shared/data/PBC_dataset_normal_DIB \\
        --second ../shared/data/other_labs/raabin --model v4.safetensors \\
        --lab ../shared/data/other_labs/tecom \\
        --out v4_float16.safetensors \\
        --record docs/results/v4_record.json
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
from ship_v3 import PATIENT_MIX, accuracy_record, conformal_record, throughput
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from v4_recipe import SECOND_ONLY, halves, lab_scores

from leukosk import VGG19LeukocyteClassifier, load_pretrained
from leukosk.datasets import PBCDataWarning, load_pbc, sample_folder
from leukosk.domain import LabShiftMonitor, calibrate_lab_shift, fit_lab_references
from leukosk.labs import evaluate_labs
from leukosk.model_selection import few_shot_scores
from leukosk.protocols import few_shot_classifier


def load(folder, size):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PBCDataWarning)
        return load_pbc(folder, image_size=size, drop_duplicates=True, verbose=False,
                        cache=size is not None)


def flagged(clf, images, shift, n_images=100, n_folders=200, seed=0):
    """Share of random folders of ``n_images`` (all, if fewer) flagged, by
    either channel, and by each."""
    with LabShiftMonitor(clf, per_image=True) as monitor:
        clf.predict_proba(images)
    rng = np.random.default_rng(seed)
    n = min(n_images, len(images))
    folders = [rng.choice(len(images), n, replace=False)
               for _ in range(n_folders if n < len(images) else 1)]
    score = np.array([monitor.subset_score(f) for f in folders])
    unsure = np.array([monitor.subset_unsure(f) for f in folders])
    by_score, by_unsure = score > shift.threshold, unsure > shift.unsure_threshold
    return {"n_images_per_folder": n, "n_folders": len(folders),
            "flagged": round(float(np.mean(by_score | by_unsure)), 4),
            "flagged_by_score": round(float(np.mean(by_score)), 4),
            "flagged_by_unsure": round(float(np.mean(by_unsure)), 4),
            "score_median": round(float(np.median(score)), 4),
            "unsure_median": round(float(np.median(unsure)), 4)}


def ten_shot(model_path, images, target, draws):
    start = time.perf_counter()
    shots = few_shot_scores(few_shot_classifier(model_path, random_state=0), images,
                            target, k=10, n_draws=draws, random_state=0)
    return {"draws": draws, "n_test": int(np.mean(shots.n_test)),
            "accuracy_mean": round(shots.accuracy_mean, 4),
            "accuracy_std": round(shots.accuracy_std, 4),
            "accuracy_min": round(float(shots.accuracy.min()), 4),
            "balanced_accuracy_mean": round(shots.balanced_accuracy_mean, 4),
            "seconds_per_draw": round((time.perf_counter() - start) / draws, 1)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir")
    p.add_argument("--second", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--lab", action="append", default=[])
    p.add_argument("--out", required=True)
    p.add_argument("--record", required=True)
    p.add_argument("--baseline", default="PBC_VGG19BN_W375_64PX_CELL_V3")
    p.add_argument("--draws", type=int, default=5)
    p.add_argument("--review-draws", type=int, default=3)
    p.add_argument("--model-name", default=V4_MODEL,
                   help="how the records name the model (default: %(default)s)")
    p.add_argument("--prefix", default="v4", help="the records' id prefix")
    p.add_argument("--title", default="Issue 28's V4, trained on PBC and Raabin-WBC")
    add_record_options(p, default=str(RESULTS_DIR / "v4.json"), option="--provenance")
    args = p.parse_args(argv)
    machine = resolve_machine(args.machine)
    torch.manual_seed(0)
    clf = VGG19LeukocyteClassifier.load(args.model, device="cpu", verbose=0)
    pbc, second = load(args.data_dir, clf.decode_size_), load(args.second, clf.decode_size_)
    sample = load(sample_folder(), None)
    labs = {Path(lab).name: load(lab, None) for lab in args.lab}
    train, test = halves(pbc)
    s_train, s_test = halves(second)
    cal, ev = train_test_split(test, test_size=0.5, random_state=0,
                               stratify=pbc.target[test])
    s_cal, s_ev = train_test_split(s_test, test_size=0.5, random_state=0,
                                   stratify=second.target[s_test])
    X, y = pbc.images, pbc.target
    record = {"model": Path(args.model).name, "device": pick_device("cpu")[1],
              "split": "duplicate-aware stratified 80/20 splits (random_state=0) of the "
                       "PBC development part and of the second source; the 20 % sides "
                       "were never trained on",
              "n_test": len(test), "n_evaluation": len(ev), "n_second_test": len(s_test),
              "pbc_test": accuracy_record(clf, X[test], y[test]),
              "bundled_sample": accuracy_record(clf, sample.images, sample.target)}
    second_test = {}
    for tta in (False, True):
        clf.set_params(tta=tta)
        second_test["tta" if tta else "plain"] = lab_scores(
            clf, second.images[s_test], second.target[s_test])
    clf.set_params(tta=False)
    record["second_test"] = second_test
    print(json.dumps({k: record[k] for k in ("pbc_test", "second_test")}))
    record["conformal"] = conformal_record(clf, X[cal], y[cal], X[ev], y[ev])
    # each training lab's own statistics (on its training images), and each of
    # its classes', so that a folder is scored against the nearest lab (or a
    # folder of one cell type against its class), not against the mix of both
    fit_lab_references(clf, np.concatenate([X[train], second.images[s_train]]),
                       np.repeat(["pbc", "raabin"], [len(train), len(s_train)]),
                       y=np.concatenate([y[train], second.target[s_train]]))
    calibration = np.concatenate([X[cal], second.images[s_cal]])
    groups = np.repeat(["pbc", "raabin"], [len(cal), len(s_cal)])
    shift = calibrate_lab_shift(clf, calibration, groups=groups, n_images=100,
                                n_folders=200)
    record["lab_shift"] = {
        "threshold": round(shift.threshold, 5),
        "unsure_threshold": round(shift.unsure_threshold, 5),
        "calibration": {"quantile": shift.quantile, "margin": shift.margin,
                        "folders_per_source": 200, "n_images": 100},
        "references": "each training lab's statistics, and each of its classes', "
                      "on its training images (fit_lab_references(..., y=)); a "
                      "folder scores its divergence from the nearest",
        "pbc_evaluation_half": flagged(clf, X[ev], shift),
        "second_evaluation_half": flagged(clf, second.images[s_ev], shift),
        "bundled_sample": flagged(clf, sample.images, shift)}
    rng = np.random.default_rng(0)
    mixes = [np.concatenate([rng.choice(np.flatnonzero(y[test] == c), n, replace=False)
                             for c, n in PATIENT_MIX.items()]) for _ in range(50)]
    record["lab_shift"]["pbc_patient_mix_flagged"] = round(float(np.mean(
        [flagged(clf, X[test][m], shift)["flagged"] for m in mixes[:10]])), 4)
    record["lab_shift"]["one_class_folders_flagged"] = {  # 100 cells of one class
        f"pbc/{c}": flagged(clf, X[test][y[test] == c], shift)["flagged"]
        for c in np.unique(y[test]) if np.sum(y[test] == c) >= 100}
    s_y = second.target[s_test]
    record["lab_shift"]["one_class_folders_flagged"].update({
        f"raabin/{c}": flagged(clf, second.images[s_test][s_y == c], shift)["flagged"]
        for c in np.unique(s_y) if np.sum(s_y == c) >= 100})
    print(json.dumps(record["lab_shift"]))
    clf.lab_shift_threshold_ = shift.threshold
    clf.lab_shift_unsure_threshold_ = shift.unsure_threshold
    out = Path(args.out)
    clf.save(out, dtype=torch.float16)
    shipped = VGG19LeukocyteClassifier.load(out, device="cpu", verbose=0)
    record["file"] = {"name": out.name, "bytes": out.stat().st_size,
                      "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
                      "float16_test_accuracy": round(accuracy_score(
                          y[test], shipped.predict(X[test])), 4)}
    model_path = str(out.resolve())
    for name, lab in labs.items():
        result = {"n_images": len(lab.target), "n_classes": len(np.unique(lab.target))}
        for tta in (False, True):
            shipped.set_params(tta=tta)
            result["tta" if tta else "plain"] = lab_scores(shipped, lab.images, lab.target)
        shipped.set_params(tta=False)
        result["lab_shift"] = flagged(shipped, lab.images, shift)
        result["ten_shot_tta"] = ten_shot(model_path, lab.images, lab.target, args.draws)
        record[f"lab:{name}"] = result
        print(name, json.dumps(result))
    # the review loop, as leukosk adapt runs it, from the public cross-lab table
    table = evaluate_labs({**{name: (lab.images, lab.target) for name, lab in labs.items()},
                           "pbc": (X[ev], y[ev]),
                           "raabin": (second.images[s_ev], second.target[s_ev])},
                          model_path, n_draws=args.review_draws, device="cpu")
    print(table)
    record["labs_table"] = table.rows
    files = [str(f) for f in sorted(sample_folder().glob("*/*.jpg"))] * 3
    baseline = load_pretrained(args.baseline, device="cpu")
    ours, theirs = throughput(shipped, files), throughput(baseline, files)
    record["throughput"] = {"images": len(files), "what": "predict_proba on JPEG files "
                            "(decoding included), no TTA, median of 3",
                            "images_per_s": round(ours, 1), "baseline": args.baseline,
                            "baseline_images_per_s": round(theirs, 1),
                            "ratio": round(ours / theirs, 3)}
    record["history"] = {"epochs": len(clf.history_),
                         "fit_minutes": round(sum(clf.history_[:, "dur"]) / 60, 1),
                         "final_train_loss": round(float(clf.history_[-1, "train_loss"]), 4)}
    record["second_only_classes"] = list(SECOND_ONLY)
    Path(args.record).write_text(json.dumps(record, indent=2, default=str))
    print(json.dumps(record, indent=2, default=str))
    command = script_command(__file__, "DATA_DIR --second RAABIN_DIR --model MODEL",
                             *[f"--lab {Path(lab).name.upper()}_DIR" for lab in args.lab],
                             f"(record: {args.record})")
    write_records(args.provenance, table_records(record, machine, command,
                                                 model=args.model_name, prefix=args.prefix),
                  title=args.title)


#: How the provenance table names V4 by default.
V4_MODEL = "V4 (PBC + Raabin-WBC)"


def table_records(record, machine, command, model=V4_MODEL, prefix="v4"):
    """V4's records: V3's kinds (PBC, sample, labs, conformal, lab shift;
    :func:`ship_v3.table_records`) and the second source's 20 % side."""
    from ship_v3 import table_records as v3_records

    out = v3_records(record, machine, command, model=model, prefix=prefix)
    for entry in out:  # a lab's 8-class answer, and how often it says ig
        lab = record.get("lab:" + entry["id"][len(prefix) + 1:].removesuffix("-tta"))
        if lab is not None and entry["id"].count("-") <= 2:
            scores = lab["tta" if entry["tta"] else "plain"]
            entry["rates"] = dict(entry.get("rates") or {},
                                  **{"eight-class-accuracy": scores["accuracy_8"],
                                     "called-ig": scores["ig_rate"]})
    rows = {row["lab"]: row for row in record.get("labs_table", [])}
    for entry in out:  # a lab's plain answer as the public cross-lab table gives it
        row = rows.get(entry["id"][len(prefix) + 1:])
        if row is not None and not entry["tta"] and "accuracy_8" in row:
            entry["accuracy"] = round(row["accuracy"], 4)
            entry["balanced_accuracy"] = round(row["balanced_accuracy"], 4)
            entry["rates"]["eight-class-accuracy"] = round(row["accuracy_8"], 4)
            entry["note"] = "as leukosk.labs.evaluate_labs gives it (the same run)"
    common = dict(machine=machine, source=command)
    from ship_v3 import lab_shift_record

    out.append(lab_shift_record(
        f"{prefix}-raabin-lab-shift", model, "Raabin-WBC subset (second training source)",
        "80/20, test part: the half not used to fit the thresholds",
        record["lab_shift"]["second_evaluation_half"]["n_folders"],
        record["lab_shift"]["second_evaluation_half"], record, common))
    splits = {"pbc": ("PBC development part", "80/20, test part: evaluation half"),
              "raabin": ("Raabin-WBC subset (second training source)",
                         "80/20, test part: evaluation half")}
    for row in record.get("labs_table", []):
        if not row.get("reviews"):
            continue
        data, split = splits.get(row["lab"], (f"{row['lab']} set (another lab)",
                                              "all of it"))
        out.append(make_record(
            f"{prefix}-{row['lab']}-review",
            model=f"{model}, then leukosk adapt on 10 reviewed cells per class "
                  f"(held-back check), {row['reviews']} draws (mean; "
                  "leukosk.labs.evaluate_labs)",
            data=data, split=f"{split}: the cells not reviewed", n=row["n_scored"],
            tta=False, accuracy=round(row["after_8"], 4),
            rates={"worst-draw": round(row["after_8_min"], 4),
                   "before-review": round(row["before_8"], 4),
                   "present-classes-after": round(row["after"], 4)},
            values={"draws-kept-unchanged": row["kept"]}, **common))
    speed = record.get("throughput")
    if speed:
        out.append(make_record(
            f"{prefix}-throughput", model=f"{model}, against {speed['baseline']} in the "
                                          "same run", data="the 160 bundled images, three times",
            split="all of them (JPEG files, decoding included, median of 3)",
            n=speed["images"], tta=False, accuracy=None,
            rates={"float16-test-accuracy": record["file"]["float16_test_accuracy"]},
            values={"images-per-s": speed["images_per_s"],
                    "baseline-images-per-s": speed["baseline_images_per_s"],
                    "speed-ratio": speed["ratio"]}, **common))
    for tta in (False, True):
        s = record["second_test"]["tta" if tta else "plain"]
        out.append(make_record(
            f"{prefix}-raabin-test" + ("-tta" if tta else ""), model=f"{model}, 8-class answer",
            data="Raabin-WBC subset (second training source, 5 classes)",
            split="80/20, test part (never trained on)", n=s["n_images"], tta=tta,
            accuracy=s["accuracy_8"], balanced_accuracy=s["balanced_accuracy"],
            rates={"present-classes-accuracy": s["accuracy"],
                   "called-a-class-raabin-lacks": s["pbc_only_rate"]}, **common))
    return out


if __name__ == "__main__":
    main()
