"""Short runs that choose the V4 recipe, and the long run that trains it (issue 28).

Two training sources: the 80 % side of PBC's duplicate-aware stratified 80/20
split (``random_state=0``, the split of V3, the bundled sample left out) and the
80 % side of the same split of a second source (Raabin-WBC's subset in
``--second``, 5 of PBC's 8 classes). One setting per call, changed by the
options: start (V3's weights or random ones), epochs, learning rate, per-source
class masks (``--mask``: a cell of the second source is scored over the classes
its source has, so that its style never counts as evidence against the classes it
lacks), source balance (on by default: each source weighs as much in the loss),
colour jitter (the recipe's strong one, or V3's with ``--v3-colour``), label
smoothing, weight averaging (``--ema``). The defaults are :func:`leukosk.protocols.leukosk2026_multi`'s. It then scores PBC's 20 % side (accuracy and macro-F1), the
second source's 20 % side (the plain 8-class answer and the classes present),
and each ``--lab`` folder (classes present and 8-class answer, no label and no
setting), with how often the cells of each non-PBC set are called one of the
classes the second source lacks (``pbc_only_rate``; ``ig_rate`` for ig alone).
One JSON line per run is appended to ``--log`` (failures too); ``--save`` writes
the model; ``--checkpoint DIR`` keeps one per epoch and resumes from it.

    python benchmarks/v4_recipe.py ../shared/data/PBC_dataset_normal_DIB \\
        --second ../shared/data/other_labs/raabin \\
        --lab ../shared/data/other_labs/tecom --epochs 3 --mask --name mask

The short runs of issue 28 (``docs/results/v4_recipe_runs.jsonl``) were made
before these defaults were set: their ``settings`` record ``mask`` and
``strong_colour`` as given then.
"""

import argparse
import hashlib
import time
import warnings

import numpy as np
from _common import logged_run, pick_device
from sklearn.metrics import accuracy_score, f1_score

from leukosk.datasets import PBCDataWarning, load_pbc, sample_folder
from leukosk.model_selection import score_present_classes, stratified_group_split
from leukosk.nn._vgg import decode_size
from leukosk.protocols import lab_shift_augmentations, leukosk2026_multi

SECOND_ONLY = ("erythroblast", "ig", "platelet")  # the classes Raabin lacks


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir")
    p.add_argument("--second", required=True, help="the second source's folder")
    p.add_argument("--lab", action="append", default=[], help="another lab's folder")
    p.add_argument("--name", default="")
    p.add_argument("--log", default="v4_runs.jsonl")
    p.add_argument("--init", default="PBC_VGG19BN_W375_64PX_CELL_V3",
                   help="starting weights (a shipped model's name) or 'none'")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--mask", action="store_true",
                   help="per-source class masks (source_classes='present')")
    p.add_argument("--no-balance", dest="balance", action="store_false")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--v3-colour", action="store_true",
                   help="V3's colour and stain jitter instead of the recipe's strong "
                        "one (the short runs logged strong_colour: false)")
    p.add_argument("--ema", type=float, default=None, metavar="DECAY",
                   help="average the weights (leukosk.callbacks.WeightAveraging)")
    p.add_argument("--train-fraction", type=float, default=1.0)
    p.add_argument("--save", default=None)
    p.add_argument("--checkpoint", default=None)
    return p


def load(folder, size):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PBCDataWarning)
        return load_pbc(folder, image_size=size, drop_duplicates=True, verbose=False)


def halves(data):
    return stratified_group_split(data.target, groups=data.groups, test_size=0.2,
                                  random_state=0)


def lab_scores(clf, images, target):
    """Classes present and the plain 8-class answer, and how often the cells
    are called a class the second source lacks."""
    pred = clf.predict(images)
    present = score_present_classes(clf, images, target)
    return {"accuracy": round(present.accuracy, 4),
            "balanced_accuracy": round(present.balanced_accuracy, 4),
            "accuracy_8": round(accuracy_score(target, pred), 4),
            "pbc_only_rate": round(float(np.isin(pred, SECOND_ONLY).mean()), 4),
            "ig_rate": round(float((pred == "ig").mean()), 4), "n_images": len(target)}


def run(args):
    params = dict(max_epochs=args.epochs, lr=args.lr, verbose=1)
    if args.label_smoothing:
        params["criterion__label_smoothing"] = args.label_smoothing
    if args.checkpoint:
        params.update(checkpoint_dir=args.checkpoint, resume=True)
    init = None if args.init == "none" else args.init
    recipe = leukosk2026_multi(weights=init, random_state=0, mask=args.mask,
                               balance=args.balance, **params)
    clf = recipe.estimator
    if args.ema:
        from leukosk.callbacks import WeightAveraging

        clf.set_params(callbacks=list(clf.callbacks)
                       + [("ema", WeightAveraging(decay=args.ema))])
    if args.v3_colour:
        clf.set_params(augment=lab_shift_augmentations(random_state=0))
    size = decode_size(clf.image_size, clf.network_settings()["module"])
    pbc, second = load(args.data_dir, size), load(args.second, size)
    labs = {lab.rstrip("/").split("/")[-1]: load_pbc(lab, image_size=None, cache=False,
                                                     verbose=False) for lab in args.lab}
    train, test = halves(pbc)
    unseen = {hashlib.sha256(p.read_bytes()).hexdigest()
              for p in sample_folder().glob("*/*.jpg")}
    train = train[[pbc.sha256[i] not in unseen for i in train]]
    s_train, s_test = halves(second)
    if args.train_fraction < 1:
        rng = np.random.default_rng(0)
        train = train[rng.random(len(train)) < args.train_fraction]
        s_train = s_train[rng.random(len(s_train)) < args.train_fraction]
    X = np.concatenate([pbc.images[train], second.images[s_train]])
    y = np.concatenate([pbc.target[train], second.target[s_train]])
    source = np.repeat(["pbc", "raabin"], [len(train), len(s_train)])
    start = time.perf_counter()
    clf.fit(X, y, source=source)
    pred = clf.predict(pbc.images[test])
    record = {"fit_min": round((time.perf_counter() - start) / 60, 2),
              "n_train": {"pbc": len(train), "second": len(s_train)},
              "pbc_test": {"accuracy": round(accuracy_score(pbc.target[test], pred), 4),
                           "macro_f1": round(f1_score(pbc.target[test], pred,
                                                      average="macro"), 4),
                           "n": len(test)},
              "second_test": lab_scores(clf, second.images[s_test], second.target[s_test])}
    for name, folder in labs.items():
        record[f"lab:{name}"] = lab_scores(clf, folder.images, folder.target)
    if args.save:
        clf.save(args.save)
    return record


def main(argv=None):
    args = parse().parse_args(argv)
    record = {"name": args.name, "settings": {k: v for k, v in vars(args).items()
                                              if k not in ("log", "name")},
              "device": pick_device()[1]}
    logged_run(args.log, record, lambda: run(args))


if __name__ == "__main__":
    main()
