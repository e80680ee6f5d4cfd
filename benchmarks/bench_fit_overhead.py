"""Training throughput of VGG19LeukocyteClassifier vs a plain PyTorch loop.

Both train the same network (LeukocyteVGG, built from the same seed) on the
same uint8 images, with the same batch size, optimizer, parameter groups and
precision, for the same number of epochs. The ratio (classifier images/s over
plain-loop images/s) is what the scikit-learn/skorch layer costs; 1.0 means
nothing. Runs are interleaved and repeated; the median is reported.

    python benchmarks/bench_fit_overhead.py            # full
    python benchmarks/bench_fit_overhead.py --quick    # CI-sized
"""

import argparse
import statistics
import time

import numpy as np
import torch
from _common import pick_device, sync

from leukosk import VGG19LeukocyteClassifier


def make_classifier(args, device):
    return VGG19LeukocyteClassifier(
        weights=None, image_size=args.image_size, max_epochs=args.epochs,
        batch_size=args.batch_size, verbose=0, random_state=0, device=device,
        iterator_train__shuffle=True)


def time_classifier(args, X, y, device):
    clf = make_classifier(args, device)
    clf.set_params(max_epochs=1)
    clf.fit(X[: args.batch_size], y[: args.batch_size])  # build + warm up
    clf.set_params(max_epochs=args.epochs)
    clf.warm_start = True
    start = time.perf_counter()
    clf.fit(X, y)
    sync(device)
    return time.perf_counter() - start


def time_plain_loop(args, X, y, device):
    """The same training written by hand: DataLoader, forward, loss, step."""
    clf = make_classifier(args, device)
    clf.set_params(max_epochs=1)
    clf.fit(X[: args.batch_size], y[: args.batch_size])  # identical module/optimizer
    module, optimizer = clf.module_, clf.optimizer_
    images = torch.from_numpy(X).permute(0, 3, 1, 2)
    targets = torch.from_numpy(np.unique(y, return_inverse=True)[1])
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images, targets),
        batch_size=args.batch_size, shuffle=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    module.train()
    start = time.perf_counter()
    for _ in range(args.epochs):
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            optimizer.zero_grad()
            loss = loss_fn(module(xb), yb)
            loss.backward()
            optimizer.step()
            loss.item()  # skorch records every batch loss; so do we
    sync(device)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized run")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    device, description = pick_device(args.device)
    cuda = device == "cuda"
    args.image_size = args.image_size or (224 if cuda else 32)
    args.n_images = 32 if args.quick else (640 if cuda else 96)
    args.batch_size = 8 if args.quick else (64 if cuda else 16)
    args.epochs = 1 if args.quick else 2
    repeats = args.repeats or (1 if args.quick else 3)
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (args.n_images, args.image_size, args.image_size, 3),
                     dtype=np.uint8)
    y = np.array([f"class{i % 4}" for i in range(args.n_images)])
    clf_times, plain_times = [], []
    for _ in range(repeats):
        clf_times.append(time_classifier(args, X, y, device))
        plain_times.append(time_plain_loop(args, X, y, device))
    n = args.n_images * args.epochs
    clf_ips = n / statistics.median(clf_times)
    plain_ips = n / statistics.median(plain_times)
    print(f"device: {description}")
    print(f"setup: {args.n_images} images {args.image_size}px, batch "
          f"{args.batch_size}, {args.epochs} epoch(s), {repeats} repeat(s), fp32")
    print(f"VGG19LeukocyteClassifier.fit: {clf_ips:8.1f} images/s")
    print(f"plain PyTorch loop:           {plain_ips:8.1f} images/s")
    print(f"ratio (classifier / plain):   {clf_ips / plain_ips:8.3f}")
    return clf_ips / plain_ips


if __name__ == "__main__":
    main()
