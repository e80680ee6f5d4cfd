"""Train the model shipped in leukosk/pretrained/ (issue 12) and print its card.

The recipe (``--protocol``, default ``leukosk2026``) on every image of a PBC
folder except those byte-identical to the 160 bundled sample images, which
stay unseen so that the sample scores the model honestly; duplicate copies and
label-conflicting duplicates are dropped. Then, on the bundled sample:
accuracy and per-class recall (with and without TTA), and the LAC conformal
thresholds (MAPIE) that let ``leukosk count`` refer cells. The model is saved
in float16; its SHA-256 and a ``meta`` dict for ``LeukoskWeights`` are printed
and written beside it as JSON.

    python benchmarks/train_shipped_model.py ../shared/data/PBC_dataset_normal_DIB \\
        --out leukosk/pretrained/pbc_vgg19bn_w25_64px.safetensors
"""

import argparse
import hashlib
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _common import pick_device
from sklearn.metrics import accuracy_score, balanced_accuracy_score, recall_score

from leukosk.datasets import PBCDataWarning, load_pbc
from leukosk.datasets import sample_folder
from leukosk.protocols import PROTOCOLS
from leukosk.uncertainty import ConformalSets, conformalize


def sample_digests():
    return {hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sample_folder().glob("*/*.jpg")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir")
    parser.add_argument("--out", required=True)
    parser.add_argument("--protocol", default="leukosk2026")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--init", default=None,
                        help="fine-tune this model (a shipped member's name or a file) "
                             "instead of training from random weights")
    parser.add_argument("--lr", type=float, default=None,
                        help="peak learning rate, if not the protocol's")
    parser.add_argument("--labshift", action="store_true",
                        help="train with leukosk.protocols.lab_shift_augmentations")
    parser.add_argument("--record", default=None,
                        help="where to write the JSON record (default: beside --out)")
    parser.add_argument("--verbose", type=int, default=1)
    args = parser.parse_args(argv)
    extra = {} if args.epochs is None else {"max_epochs": args.epochs}
    if args.init:
        extra["weights"] = args.init
    if args.lr:
        extra["lr"] = args.lr
    if args.labshift:
        from leukosk.protocols import lab_shift_augmentations

        extra["augment"] = lab_shift_augmentations(random_state=0)
    clf = PROTOCOLS[args.protocol](random_state=0, verbose=args.verbose, **extra).estimator
    settings = clf.network_settings()
    load_size = round(settings["image_size"] / settings["module"].get("crop", 1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PBCDataWarning)
        data = load_pbc(args.data_dir, image_size=load_size, drop_duplicates=True,
                        verbose=False)
        sample = load_pbc(sample_folder(), image_size=load_size, cache=False,
                          verbose=False)
    unseen = sample_digests()
    train = np.array([d not in unseen for d in data.sha256])
    print(f"training on {train.sum()} of {len(train)} images ({(~train).sum()} are "
          f"the bundled sample's); {len(data.dropped)} duplicate copies dropped")
    start = time.perf_counter()
    clf.fit(data.images[train], data.target[train])
    fit_min = (time.perf_counter() - start) / 60
    scores = {}
    for tta in (False, True):
        proba = clf.set_params(tta=tta).predict_proba(sample.images)
        pred = clf.classes_[proba.argmax(1)]
        scores["tta" if tta else "plain"] = {
            "accuracy": round(accuracy_score(sample.target, pred), 4),
            "balanced_accuracy": round(balanced_accuracy_score(sample.target, pred), 4),
            "recall": dict(zip(clf.classes_.tolist(), np.round(recall_score(
                sample.target, pred, average=None, labels=clf.classes_), 3).tolist()))}
    clf.set_params(tta=False)
    sets = ConformalSets.from_mapie(conformalize(clf, sample.images, sample.target,
                                                 confidence_level=[0.9, 0.95]))
    out = Path(args.out)
    clf.save(out, dtype=torch.float16)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    record = {
        "file": out.name, "sha256": digest, "size_bytes": out.stat().st_size,
        "protocol": args.protocol, "max_epochs": clf.max_epochs, "lr": clf.lr,
        "init": args.init, "labshift": args.labshift,
        "n_train": int(train.sum()), "fit_min": round(fit_min, 1),
        "machine": pick_device()[1], "sample": scores,
        "conformal_thresholds": sets.thresholds,
        "classes": clf.classes_.tolist(), "network": clf.network_settings(),
        "preprocessing": clf._plain_module().preprocess.describe(),
        "final_train_loss": round(float(clf.history_[-1, "train_loss"]), 4),
    }
    Path(args.record or str(out) + ".json").write_text(
        json.dumps(record, indent=2, default=str))
    print(json.dumps(record, indent=2, default=str))


if __name__ == "__main__":
    main()
