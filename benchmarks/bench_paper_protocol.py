"""Wall time of the paper's training protocol at full scale.

Jarjees et al. (2022) trained VGG-19 on 6,800 images of 224 x 224 px for 10
epochs in batches of 10 (68,000 image passes) in 521 minutes. This trains the
same protocol (:func:`leukosk.protocols.jarjees2022`: SGD, reflection +
rotation augmentation on the device, 10 epochs) on 6,800 images and prints
the wall time, training images/s and the speed-up over the paper. Images come
from DATA_DIR if given (repeated to reach the count; only timing is measured
here, accuracy is the job of ``protocol_experiment.py``), else random.

    python benchmarks/bench_paper_protocol.py [DATA_DIR] --amp --channels-last
    python benchmarks/bench_paper_protocol.py --batch-size 128 --amp --channels-last
    python benchmarks/bench_paper_protocol.py --quick            # CI-sized
"""

import argparse
import time

import numpy as np
from _common import load_folder, pick_device, precision_name, sync

from leukosk.protocols import jarjees2022

PAPER_MINUTES = 521


def images_for(args):
    if args.data_dir is None:
        rng = np.random.default_rng(0)
        X = rng.integers(0, 256, (min(args.images, 1024), args.image_size,
                                  args.image_size, 3), dtype=np.uint8)
        y = np.array([f"class{i % 8}" for i in range(len(X))])
    else:
        data = load_folder(args.data_dir, args.image_size)
        X, y = data.images, data.target
    index = np.resize(np.random.default_rng(0).permutation(len(X)), args.images)
    return X[index], y[index]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?")
    parser.add_argument("--quick", action="store_true", help="CI-sized run")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--images", type=int, default=6800)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--amp", action="store_true", help="bf16 autocast")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.epochs, args.image_size = 20, 1, 32
    device, description = pick_device(args.device)
    X, y = images_for(args)
    recipe = jarjees2022(weights=None, batch_size=args.batch_size, random_state=0,
                         device=device, verbose=1, callbacks__progress_bar=None, amp=args.amp,
                         channels_last=args.channels_last, compile=args.compile,
                         image_size=args.image_size, max_epochs=args.epochs)
    clf = recipe.estimator
    warm = clf.set_params(max_epochs=1).fit(X[: 4 * args.batch_size],
                                             y[: 4 * args.batch_size])
    warm.set_params(max_epochs=args.epochs)
    warm.warm_start = True  # keep the built (and compiled) network
    sync(device)
    start = time.perf_counter()
    warm.fit(X, y)
    sync(device)
    seconds = time.perf_counter() - start
    passes = args.images * args.epochs
    print(f"device: {description}")
    print(f"protocol: {args.images} images {args.image_size}px, {args.epochs} epochs, "
          f"batch {args.batch_size} (lr {clf.lr:g}), augmentation on, "
          f"{precision_name(args.amp, args.channels_last)}"
          f"{', compiled' if args.compile else ''}")
    print(f"wall time {seconds:.1f} s, {passes / seconds:.0f} training images/s, "
          f"final train loss {clf.history_[-1, 'train_loss']:.3f}")
    if not args.quick:
        print(f"the paper's {PAPER_MINUTES} min for the same passes: "
              f"x{PAPER_MINUTES * 60 / seconds:.0f}")
    return seconds


if __name__ == "__main__":
    main()
