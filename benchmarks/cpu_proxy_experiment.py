"""CPU-scale proxy of the paper's pipeline on a PBC folder (issue 5's experiment).

Duplicate-aware stratified 80/20 split of the folder, 64 px, from scratch
(``weights=None``: ImageNet weights are not available everywhere), VGG-19 with
batch norm and narrow hidden layers, AdamW with a one-cycle schedule, random
reflection + rotation; accuracy and macro-F1 on the 20 %, with and without
test-time augmentation. A from-scratch CPU proxy, not the paper's setting.

    python benchmarks/cpu_proxy_experiment.py ../shared/data/PBC_dataset_normal_DIB
"""

import argparse
import math
import time
import warnings

import numpy as np
import torch
from _common import pick_device
from skorch.callbacks import LRScheduler
from sklearn.metrics import accuracy_score, f1_score

from leukosk import RandomReflectRotate, VGG19LeukocyteClassifier
from leukosk.datasets import PBCDataWarning, load_pbc
from leukosk.model_selection import stratified_group_split


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-lr", type=float, default=2e-3)
    parser.add_argument("--hidden-units", type=int, default=256)
    parser.add_argument("--limit", type=int, default=None,
                        help="use only this many training images (smoke runs)")
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PBCDataWarning)
        data = load_pbc(args.data_dir, image_size=args.image_size, verbose=False)
    train, test = stratified_group_split(data.target, groups=data.groups,
                                         test_size=0.2, random_state=0)
    if args.limit:
        train = np.random.default_rng(0).permutation(train)[: args.limit]
    steps = args.epochs * math.ceil(len(train) / args.batch_size)
    clf = VGG19LeukocyteClassifier(
        weights=None, batch_norm=True, module__hidden_units=args.hidden_units,
        image_size=args.image_size, batch_size=args.batch_size,
        max_epochs=args.epochs, lr=args.max_lr, head_lr_multiplier=1.0,
        optimizer=torch.optim.AdamW, optimizer__weight_decay=0.05,
        optimizer__fused=True, augment=RandomReflectRotate(), random_state=0,
        verbose=0, callbacks=[("one_cycle", LRScheduler(
            policy=torch.optim.lr_scheduler.OneCycleLR, max_lr=args.max_lr,
            total_steps=steps, step_every="batch"))])
    start = time.perf_counter()
    clf.fit(data.images[train], data.target[train])
    fit_s = time.perf_counter() - start
    print(f"device: {pick_device()[1]}")
    print(f"train {len(train)} / test {len(test)} images, {args.image_size}px, "
          f"{args.epochs} epochs, fit {fit_s / 60:.1f} min; train loss by epoch "
          f"{[round(v, 3) for v in clf.history_[:, 'train_loss']]}")
    for tta in (False, True):
        pred = clf.set_params(tta=tta).predict(data.images[test])
        print(f"tta={tta!s:5}: accuracy {accuracy_score(data.target[test], pred):.4f}, "
              f"macro-F1 {f1_score(data.target[test], pred, average='macro'):.4f}")


if __name__ == "__main__":
    main()
