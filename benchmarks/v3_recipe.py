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

    python benchmarks/v3_recipe.py ../shared/data/PBC_dataset_normal_DIB \\
        --lab ../shared/data/other_labs/tecom --view cell --epochs 3 --name cell-64
"""

import argparse
import hashlib
import json
import time
import traceback
import warnings

import numpy as np
from _common import pick_device
from sklearn.metrics import accuracy_score, f1_score

from leukosk.nn._vgg import decode_size
from leukosk.datasets import PBCDataWarning, load_pbc
from leukosk.datasets._sample import sample_folder
from leukosk.model_selection import score_present_classes, stratified_group_split
from leukosk.protocols import lab_shift_augmentations, leukosk2026


def parse(argv=None):
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
    return p.parse_args(argv)


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
            "balanced_accuracy": round(result.balanced_accuracy, 4)}
    if args.save:
        clf.save(args.save)
    return record


def main(argv=None):
    args = parse(argv)
    record = {"name": args.name, "settings": {k: v for k, v in vars(args).items()
                                              if k not in ("log", "name")},
              "device": pick_device()[1]}
    try:
        record.update(run(args))
    except BaseException as exc:  # every run is logged, failures included
        record["error"] = "".join(traceback.format_exception_only(exc)).strip()
        traceback.print_exc()
    with open(args.log, "a") as f:
        f.write(json.dumps(record) + "\n")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
