"""Prediction throughput: predict_proba vs a plain PyTorch eval loop.

Both use the same fitted network, images, batch size and precision: the plain
loop copies the images to the device, runs the module under
``torch.inference_mode`` batch by batch and gathers softmax probabilities on
the CPU, as one would write it by hand. Also prints the achieved GFLOP/s
(forward FLOPs counted by ``torch.utils.flop_counter``) next to the machine's
practical peak, a large matrix product measured in the same run and
precision.

    python benchmarks/bench_predict.py                 # full (224 px)
    python benchmarks/bench_predict.py --amp --channels-last
    python benchmarks/bench_predict.py --quick         # CI-sized
"""

import contextlib

import numpy as np
import torch
from _common import (forward_gflop, median_time, peak_gflops, pick_device,
                     precision_name, sync, training_parser)

from leukosk import VGG19LeukocyteClassifier


def fitted(args, X, y, device):
    clf = VGG19LeukocyteClassifier(
        weights=None, image_size=args.image_size, batch_size=args.batch_size,
        max_epochs=1, verbose=0, random_state=0, device=device, amp=args.amp,
        channels_last=args.channels_last)
    return clf.fit(X[: args.batch_size], y[: args.batch_size])


def plain_predict(module, X, args, device):
    autocast = (torch.autocast(device, dtype=torch.bfloat16) if args.amp
                else contextlib.nullcontext())
    images = torch.from_numpy(X).to(device).permute(0, 3, 1, 2)
    out = []
    module.eval()
    with torch.inference_mode(), autocast:
        for i in range(0, len(images), args.batch_size):
            out.append(torch.softmax(module(images[i:i + args.batch_size]).float(),
                                     dim=1).cpu())
    return torch.cat(out).numpy()


def main(argv=None):
    parser = training_parser(__doc__)
    args = parser.parse_args(argv)
    device, description = pick_device(args.device)
    cuda = device == "cuda"
    args.image_size = args.image_size or (32 if args.quick else 224)
    args.batch_size = args.batch_size or (8 if args.quick else (128 if cuda else 16))
    n = args.images or (32 if args.quick else (4096 if cuda else 64))
    repeats = 1 if args.quick else 3
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (n, args.image_size, args.image_size, 3), dtype=np.uint8)
    y = np.array([f"class{i % 4}" for i in range(n)])
    clf = fitted(args, X, y, device)
    np.testing.assert_allclose(clf.predict_proba(X[:4]),
                               plain_predict(clf.module_, X[:4], args, device),
                               rtol=2e-2, atol=1e-3)  # same computation

    def ours():
        clf.predict_proba(X)
        sync(device)

    def plain():
        plain_predict(clf.module_, X, args, device)
        sync(device)

    ours(), plain()  # warm-up
    ours_ips = n / median_time(ours, repeats)
    plain_ips = n / median_time(plain, repeats)
    gflop = forward_gflop(clf.module_, args.image_size)
    peak = peak_gflops(device, torch.bfloat16 if args.amp else torch.float32)
    print(f"device: {description}")
    print(f"setup: {n} images {args.image_size}px, batch {args.batch_size}, "
          f"{precision_name(args.amp, args.channels_last)}, median of {repeats}")
    print(f"predict_proba:            {ours_ips:9.1f} images/s")
    print(f"plain eval loop:          {plain_ips:9.1f} images/s")
    print(f"ratio (ours / plain):     {ours_ips / plain_ips:9.3f}")
    print(f"forward: {gflop:.2f} GFLOP/image; achieved {ours_ips * gflop:,.0f} GFLOP/s "
          f"= {ours_ips * gflop / peak:.0%} of the measured matmul peak "
          f"{peak:,.0f} GFLOP/s{' (TF32)' if cuda and not args.amp else ''}")
    return ours_ips / plain_ips


if __name__ == "__main__":
    main()
