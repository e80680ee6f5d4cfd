"""Effect of test-time augmentation (8 square symmetries) on accuracy.

Trains one model on a class-stratified subset of a PBC folder (the
``<class>/<file>.jpg`` layout), with RandomReflectRotate augmentation, then
scores the same held-out images with ``tta=False`` and ``tta=True``.
Byte-identical duplicate files are left out entirely, so none straddles the
split, and non-image files are skipped. From scratch (``weights=None``), a
narrow VGG-19-BN: a CPU-sized proxy, not the paper's setting.

    python benchmarks/bench_tta_accuracy.py ../shared/data/PBC_dataset_normal_DIB
    python benchmarks/bench_tta_accuracy.py DATA_DIR --quick
"""

import argparse
import hashlib
import time
from collections import Counter
from pathlib import Path

import numpy as np
from _common import pick_device
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

from leukosk import RandomReflectRotate, VGG19LeukocyteClassifier
from leukosk.utils._images import check_images


def unique_images(folder):
    """(paths, labels) of readable images whose bytes occur only once."""
    files = sorted(p for p in Path(folder).glob("*/*") if p.is_file())
    digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in files]
    counts = Counter(digests)
    keep = [p for p, d in zip(files, digests) if counts[d] == 1]
    readable = []
    for p in keep:
        try:
            check_images([p])
            readable.append(p)
        except ValueError:
            print(f"skipped (not an image): {p}")
    return np.array([str(p) for p in readable]), np.array([p.parent.name for p in readable])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir")
    parser.add_argument("--per-class", type=int, default=150,
                        help="training images per class (default: %(default)s)")
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.per_class, args.test_per_class, args.epochs = 10, 5, 1
    paths, labels = unique_images(args.data_dir)
    n_classes = len(set(labels))
    X_train, X_rest, y_train, y_rest = train_test_split(
        paths, labels, train_size=args.per_class * n_classes, stratify=labels,
        random_state=0)
    _, X_test, _, y_test = train_test_split(
        X_rest, y_rest, test_size=args.test_per_class * n_classes, stratify=y_rest,
        random_state=0)
    clf = VGG19LeukocyteClassifier(
        weights=None, batch_norm=True, module__hidden_units=256,
        image_size=args.image_size, max_epochs=args.epochs, batch_size=32,
        lr=3e-3, head_lr_multiplier=1.0, optimizer__weight_decay=5e-4,
        augment=RandomReflectRotate(), random_state=0, verbose=0)
    start = time.perf_counter()
    clf.fit(X_train, y_train)
    fit_s = time.perf_counter() - start
    results = {}
    for tta in (False, True):
        clf.set_params(tta=tta)
        start = time.perf_counter()
        pred = clf.predict(X_test)
        results[tta] = (accuracy_score(y_test, pred),
                        f1_score(y_test, pred, average="macro"),
                        time.perf_counter() - start)
    print(f"device: {pick_device()[1]}")
    print(f"data: {len(X_train)} train / {len(X_test)} test images of "
          f"{n_classes} classes from {args.data_dir}, {args.image_size}px, "
          f"{args.epochs} epochs, fit {fit_s:.0f} s")
    for tta, (acc, f1, secs) in results.items():
        print(f"tta={tta!s:5}: accuracy {acc:.3f}, macro-F1 {f1:.3f} "
              f"(predict {secs:.0f} s)")
    print(f"TTA change: accuracy {results[True][0] - results[False][0]:+.3f}, "
          f"macro-F1 {results[True][1] - results[False][1]:+.3f}")


if __name__ == "__main__":
    main()
