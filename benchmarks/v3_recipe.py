"""Short runs that choose the V3 recipe, and the long run that trains it (issue 20).

One setting per call: the ``leukosk2026`` network from random weights with the
lab-shift augmentation chain, changed by the options (view, resolution, colour
standardisation, epochs), trained on the 80 % side of the duplicate-aware
stratified 80/20 split of a PBC folder (``random_state=0``, the split every
recipe of the reproducing page was measured on). Then it scores the 20 %
(accuracy and macro-F1, with and without TTA) and, where ``--lab`` folders are
given, each other lab's folder on the classes present, with no label and no
setting of the lab's (:func:`leukosk.model_selection.score_present_classes`).
One JSON line per run is appended to ``--log`` (failures too); ``--save``
writes the model; ``--checkpoint DIR`` keeps one per epoch and resumes from it.
With ``--record PATH --record-id ID`` the run's scores also go to the
provenance table's results file PATH (:func:`table_records`: ``ID-pbc-test``,
``ID-pbc-test-tta`` and ``ID-LAB`` for each lab), as the short runs of the
other-labs page were recorded.

    python benchmarks/v3_recipe.py ../shared/data/PBC_dataset_normal_DIB \\
        --lab ../shared/data/other_labs/tecom --view cell --epochs 3 --name cell-64
"""

import argparse
import hashlib
import time
import warnings

import numpy as np
from _common import (add_record_options, logged_run, make_record, pick_device,
                     resolve_machine, script_command, write_records)
from sklearn.metrics import accuracy_score, f1_score

from leukosk.nn._vgg import decode_size
from leukosk.datasets import PBCDataWarning, load_pbc
from leukosk.datasets import sample_folder
from leukosk.model_selection import score_present_classes, stratified_group_split
from leukosk.protocols import lab_shift_augmentations, leukosk2026


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir")
    p.add_argument("--lab", action="append", default=[], help="another lab's folder")
    p.add_argument("--name", default="")
    p.add_argument("--log", default="v3_runs.jsonl")
    p.add_argument("--view", choices=["centre", "cell"], default="cell")
    p.add_argument("--crop", type=float, default=0.6)
    p.add_argument("--cell-scale", type=float, default=1.8)
    p.add_argument("--standardize", action="store_true")
    p.add_argument("--white-balance", action="store_true")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--no-labshift", dest="labshift", action="store_false")
    p.add_argument("--train-fraction", type=float, default=1.0,
                   help="train on this fraction of the 80 %% side (quick runs)")
    p.add_argument("--exclude-sample", action="store_true",
                   help="keep the images of the bundled sample out of training "
                        "(they then score the model honestly)")
    p.add_argument("--save", default=None)
    p.add_argument("--checkpoint", default=None)
    add_record_options(p)
    p.add_argument("--record-id", default=None, help="the records' id (with --record)")
    return p


#: The settings a record's command leaves out (paths and bookkeeping).
_NOT_IN_COMMAND = ("data_dir", "lab", "save", "checkpoint", "record", "machine",
                   "record_data", "record_id")


def run_command(settings, parser=None):
    """The command of a logged run, as a record names it: the options that
    differ from their defaults, folders written as their role."""
    parser = parser or parse()
    labs = [lab.rstrip("/").split("/")[-1].upper() for lab in settings.get("lab", [])]
    words = ["DATA_DIR"] + [f"--lab {lab if lab.endswith('_DIR') else lab + '_DIR'}"
                            for lab in labs]
    for action in parser._actions:  # argparse offers no public accessor
        key = action.dest
        if key in _NOT_IN_COMMAND or key not in settings or not action.option_strings:
            continue
        value = settings[key]
        if value == action.default:
            continue
        option = action.option_strings[0]
        words.append(option if isinstance(value, bool) else f"{option} {value:g}"
                     if isinstance(value, float) else f"{option} {value}")
    return script_command(__file__, *words)


def describe(settings):
    """How the provenance table names a run's recipe."""
    view = {"cell": "cell-centred view", "centre": f"central {settings['crop'] * 100:g} %"}
    extra = [view[settings["view"]]]
    if settings.get("standardize"):
        extra.append("per-image colour standardisation")
    if settings.get("white_balance"):
        extra.append("background white balance")
    width = {0.25: "1/4", 0.375: "3/8"}.get(settings["width"], f"{settings['width']:g}")
    return (f"leukosk2026 from random weights, lab-shift augmentation, "
            f"{' + '.join(extra)}, {settings['image_size']} px, {width} width, "
            f"{settings['epochs']} epochs")


def table_records(entry, machine, command, prefix, date=None):
    """The provenance-table records of one ``--log`` line: the 80/20 test
    part with and without TTA (with the fit's minutes and the training
    images as values), and each lab's folder with no setting."""
    model = describe(entry["settings"])
    common = dict(machine=machine, source=command, date=date)
    out = []
    for tta in (False, True):
        s = entry["pbc_test"]["tta" if tta else "plain"]
        out.append(make_record(
            f"{prefix}-pbc-test" + ("-tta" if tta else ""), model=model,
            data="PBC development part", split="80/20, test part", n=entry["n_test"],
            tta=tta, accuracy=s["accuracy"], macro_f1=s["macro_f1"],
            values=None if tta else {"fit-minutes": round(entry["fit_min"], 1),
                                     "n-train": entry["n_train"]}, **common))
    for key in (k for k in entry if k.startswith("lab:")):
        lab, s = key[4:], entry[key]
        # Lines written before n_images was logged are the tecom set's (300 images).
        out.append(make_record(
            f"{prefix}-{lab}", model=f"{model}, no setting",
            data=f"{lab} set (another lab, {s.get('n_classes', 5)} classes)",
            split="all of it", n=s.get("n_images", 300), tta=False,
            accuracy=s["accuracy"], balanced_accuracy=s["balanced_accuracy"], **common))
    return out


def classifier(args):
    module = {"module__view": args.view, "module__crop": args.crop,
              "module__cell_scale": args.cell_scale,
              "module__standardize": args.standardize, "module__width": args.width,
              "module__white_balance": args.white_balance}
    extra = {"criterion__label_smoothing": args.label_smoothing} \
        if args.label_smoothing else {}
    if args.labshift:
        extra["augment"] = lab_shift_augmentations(random_state=0)
    if args.checkpoint:
        extra.update(checkpoint_dir=args.checkpoint, resume=True)
    return leukosk2026(random_state=0, image_size=args.image_size, max_epochs=args.epochs,
                       lr=args.lr, verbose=1, **module, **extra).estimator


def scores(clf, images, target):
    out = {}
    for tta in (False, True):
        pred = clf.set_params(tta=tta).predict(images)
        key = "tta" if tta else "plain"
        out[key] = {"accuracy": round(accuracy_score(target, pred), 4),
                    "macro_f1": round(f1_score(target, pred, average="macro"), 4)}
    clf.set_params(tta=False)
    return out


def run(args):
    clf = classifier(args)
    settings = clf.network_settings()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PBCDataWarning)
        data = load_pbc(args.data_dir, image_size=decode_size(settings["image_size"], settings["module"]),
                         drop_duplicates=True,
                        verbose=False)
        labs = {lab: load_pbc(lab, image_size=None, cache=False, verbose=False)
                for lab in args.lab}
    train, test = stratified_group_split(data.target, groups=data.groups, test_size=0.2,
                                         random_state=0)
    if args.exclude_sample:
        unseen = {hashlib.sha256(p.read_bytes()).hexdigest()
                  for p in sample_folder().glob("*/*.jpg")}
        train = train[[data.sha256[i] not in unseen for i in train]]
    if args.train_fraction < 1:
        keep = np.random.default_rng(0).random(len(train)) < args.train_fraction
        train = train[keep]
    start = time.perf_counter()
    clf.fit(data.images[train], data.target[train])
    record = {"fit_min": round((time.perf_counter() - start) / 60, 2),
              "n_train": len(train), "n_test": len(test),
              "pbc_test": scores(clf, data.images[test], data.target[test])}
    for lab, folder in labs.items():
        result = score_present_classes(clf, folder.images, folder.target)
        record[f"lab:{lab.rstrip('/').split('/')[-1]}"] = {
            "accuracy": round(result.accuracy, 4),
            "balanced_accuracy": round(result.balanced_accuracy, 4),
            "n_images": len(folder.target), "n_classes": len(set(folder.target))}
    if args.save:
        clf.save(args.save)
    return record


def main(argv=None):
    parser = parse()
    args = parser.parse_args(argv)
    if args.record and not args.record_id:
        parser.error("--record needs --record-id")
    machine = resolve_machine(args.machine) if args.record else None
    record = {"name": args.name, "settings": {k: v for k, v in vars(args).items()
                                              if k not in ("log", "name")
                                              and k not in _NOT_IN_COMMAND[4:]},
              "device": pick_device()[1]}
    logged_run(args.log, record, lambda: run(args))
    if args.record and "error" not in record:
        write_records(args.record, table_records(record, machine,
                                                 run_command(record["settings"], parser),
                                                 args.record_id),
                      title="Another lab's images: the runs behind the pages' tables")


if __name__ == "__main__":
    main()
