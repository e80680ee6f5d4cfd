"""Colour-free lab-shift fine-tune on the 80/20 split, scored on PBC and another lab (issue 16).

A trained model (``--init``, e.g. the leukosk2026 model of the split saved by
``cpu_recipe_search.py --save``) is fine-tuned with
:func:`leukosk.protocols.lab_shift_augmentations`, plus, on a random fraction
``--p`` of the images, colour-free jitter (hue rotated by up to half a turn,
saturation from 0 to 2x). It is scored on the split's 2,051 PBC test images
(with and without TTA) and on another lab's folder at crop 0.6 and 1.0. One
JSON line per run is appended to ``--log``.

    python benchmarks/colour_free_experiment.py ../shared/data/PBC_dataset_normal_DIB \\
        ../shared/data/other_labs/tecom --init split_model.safetensors --p 0.5 --epochs 6
"""

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _common import load_folder, pick_device
from sklearn.metrics import accuracy_score, f1_score

from leukosk import RandomColorJitter, VGG19LeukocyteClassifier
from leukosk.datasets import PBCDataWarning, load_pbc
from leukosk.model_selection import score_present_classes, stratified_group_split
from leukosk.protocols import lab_shift_augmentations, leukosk2026


class SometimesColourFree(RandomColorJitter):
    """Colour-free jitter (hue +-0.5 turn, saturation 0-2x) on a fraction p of the images."""

    def __init__(self, p=0.5, random_state=None):
        self.p = p
        super().__init__(brightness=0.0, contrast=0.0, saturation=1.0, hue=0.5,
                         random_state=random_state)

    def _apply(self, x, generator):
        jittered = super()._apply(x, generator)
        chosen = torch.rand(len(x), generator=generator) < self.p
        return torch.where(chosen.to(x.device).view(-1, 1, 1, 1), jittered, x)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir")
    parser.add_argument("lab_dir")
    parser.add_argument("--init", required=True, help="the model to fine-tune")
    parser.add_argument("--p", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--limit", type=int, default=None,
                        help="train on this many images only (a smoke test)")
    parser.add_argument("--log", default="colour_free_runs.jsonl")
    args = parser.parse_args(argv)
    augment = lab_shift_augmentations(random_state=0)
    augment.steps.insert(3, ("colour_free", SometimesColourFree(p=args.p)))
    clf = leukosk2026(weights=args.init, max_epochs=args.epochs, lr=args.lr,
                      augment=augment, random_state=0, verbose=1).estimator
    settings = clf.network_settings()  # decode so that the crop leaves image_size px
    data = load_folder(args.data_dir,
                       round(settings["image_size"] / settings["module"].get("crop", 1.0)))
    train, test = stratified_group_split(data.target, groups=data.groups, test_size=0.2,
                                         random_state=0)
    if args.limit:
        train = np.random.default_rng(0).permutation(train)[: args.limit]
    start = time.perf_counter()
    clf.fit(data.images[train], data.target[train])
    record = {"name": f"colour-free p={args.p}, {args.epochs} epochs", "init": args.init,
              "fit_min": round((time.perf_counter() - start) / 60, 2),
              "device": pick_device()[1]}
    for tta in (False, True):
        pred = clf.set_params(tta=tta).predict(data.images[test])
        record["pbc_tta" if tta else "pbc"] = {
            "accuracy": round(accuracy_score(data.target[test], pred), 4),
            "macro_f1": round(f1_score(data.target[test], pred, average="macro"), 4)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PBCDataWarning)
        lab = load_pbc(args.lab_dir, image_size=None, verbose=False, cache=False)
    with tempfile.TemporaryDirectory() as folder:  # reload to change the crop
        path = clf.set_params(augment=None, tta=False).save(Path(folder, "m.safetensors"))
        for crop in (0.6, 1.0):
            scores = score_present_classes(
                VGG19LeukocyteClassifier.load(path, verbose=0, module__crop=crop),
                lab.images, lab.target)
            record[f"other_lab_crop_{crop}"] = {
                "accuracy": round(scores.accuracy, 4),
                "balanced_accuracy": round(scores.balanced_accuracy, 4)}
    print(json.dumps(record))
    with open(args.log, "a") as f:
        f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
