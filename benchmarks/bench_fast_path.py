"""Fast path vs the fp32 default: fit throughput of VGG19LeukocyteClassifier.

The same classifier, data, batch size and epochs, once with the defaults
(float32, contiguous NCHW layout) and once with ``amp=True`` (bfloat16
autocast) and ``channels_last=True``; with ``--compile`` a third run adds
``compile=True`` (torch.compile, whose first-batch compilation is excluded
by a warm-up fit). Prints images/s of each and the ratio to fp32.

    python benchmarks/bench_fast_path.py              # full
    python benchmarks/bench_fast_path.py --quick      # CI-sized
"""

import time

import numpy as np
from _common import median_time, pick_device, sync, training_parser

from leukosk import VGG19LeukocyteClassifier

CONFIGS = {
    "fp32 (default)": {},
    "bf16 autocast + channels_last": {"amp": True, "channels_last": True},
}


def fitted_warm(params, X, y, args, device):
    clf = VGG19LeukocyteClassifier(
        weights=None, image_size=args.image_size, batch_size=args.batch_size,
        max_epochs=1, verbose=0, random_state=0, device=device, **params)
    clf.fit(X[: 2 * args.batch_size], y[: 2 * args.batch_size])  # build, compile
    clf.set_params(max_epochs=args.epochs)
    clf.warm_start = True
    return clf


def main(argv=None):
    parser = training_parser(__doc__, precision=False)
    parser.add_argument("--compile", action="store_true", help="also compile=True")
    args = parser.parse_args(argv)
    device, description = pick_device(args.device)
    cuda = device == "cuda"
    args.image_size = args.image_size or (224 if cuda else 64)
    args.batch_size = args.batch_size or (10 if cuda or args.quick else 32)
    n = args.images or (20 if args.quick else (1280 if cuda else 128))
    args.epochs = 1 if args.quick else 2
    repeats = 1 if args.quick else 3
    configs = dict(CONFIGS)
    if args.compile:
        configs["bf16 + channels_last + compile"] = {
            "amp": True, "channels_last": True, "compile": True}
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (n, args.image_size, args.image_size, 3), dtype=np.uint8)
    y = np.array([f"class{i % 4}" for i in range(n)])
    ips = {}
    for name, params in configs.items():
        clf = fitted_warm(params, X, y, args, device)

        def run():
            clf.fit(X, y)
            sync(device)

        ips[name] = n * args.epochs / median_time(run, repeats)
    print(f"device: {description}")
    print(f"setup: {n} images {args.image_size}px, batch {args.batch_size}, "
          f"{args.epochs} epoch(s), median of {repeats}")
    base = ips["fp32 (default)"]
    for name, value in ips.items():
        print(f"{name + ':':34s}{value:9.1f} images/s   x{value / base:.2f}")
    return ips


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"({time.perf_counter() - start:.0f} s)")
