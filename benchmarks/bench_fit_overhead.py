"""Training throughput of VGG19LeukocyteClassifier vs plain PyTorch loops.

All runs train the same network (LeukocyteVGG, built from the same seed) on
the same uint8 images with the same batch size, optimizer, parameter groups,
precision and memory layout, for the same number of epochs. Two hand-written
baselines: the idiomatic ``DataLoader`` loop (pinned memory and
``non_blocking`` copies on CUDA), and a loop over batches cut from image
tensors already on the device (what ``data_on_device`` does). The headline
ratio is the classifier over the faster baseline: what the
scikit-learn/skorch layer costs; 1.0 means nothing. Runs are interleaved and
repeated; medians are reported.

    python benchmarks/bench_fit_overhead.py              # full, fp32
    python benchmarks/bench_fit_overhead.py --amp --channels-last
    python benchmarks/bench_fit_overhead.py --quick      # CI-sized
"""

import contextlib
import statistics
import time

import numpy as np
import torch
from _common import pick_device, precision_name, sync, training_parser

from leukosk import VGG19LeukocyteClassifier


def make_classifier(args, device):
    return VGG19LeukocyteClassifier(
        weights=None, image_size=args.image_size, max_epochs=args.epochs,
        batch_size=args.batch_size, verbose=0, random_state=0, device=device,
        amp=args.amp, channels_last=args.channels_last)


def warmed_up(args, X, y, device):
    """A classifier built and run on one batch, so timings exclude set-up."""
    clf = make_classifier(args, device)
    clf.set_params(max_epochs=1)
    clf.fit(X[: args.batch_size], y[: args.batch_size])
    return clf


def time_classifier(args, X, y, device):
    clf = warmed_up(args, X, y, device)
    clf.set_params(max_epochs=args.epochs)
    clf.warm_start = True
    sync(device)
    start = time.perf_counter()
    clf.fit(X, y)
    sync(device)
    return time.perf_counter() - start


def _train(args, module, optimizer, batches, device):
    loss_fn = torch.nn.CrossEntropyLoss()
    autocast = (torch.autocast(device, dtype=torch.bfloat16) if args.amp
                else contextlib.nullcontext())
    module.train()
    for _ in range(args.epochs):
        for xb, yb in batches():
            optimizer.zero_grad()
            with autocast:
                out = module(xb)
            loss = loss_fn(out.float(), yb)
            loss.backward()
            optimizer.step()
            loss.item()  # skorch records every batch loss; so do we


def time_dataloader_loop(args, X, y, device):
    """The usual hand-written loop: DataLoader, copy, forward, loss, step."""
    clf = warmed_up(args, X, y, device)
    images = torch.from_numpy(X).permute(0, 3, 1, 2)
    targets = torch.from_numpy(np.unique(y, return_inverse=True)[1])
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images, targets), batch_size=args.batch_size,
        shuffle=True, pin_memory=device == "cuda")

    def batches():
        for xb, yb in loader:
            yield xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)

    sync(device)
    start = time.perf_counter()
    _train(args, clf.module_, clf.optimizer_, batches, device)
    sync(device)
    return time.perf_counter() - start


def time_on_device_loop(args, X, y, device):
    """A hand-written loop over batches indexed from tensors on the device."""
    clf = warmed_up(args, X, y, device)
    sync(device)
    start = time.perf_counter()  # the one copy to the device counts
    images = torch.from_numpy(X).to(device).permute(0, 3, 1, 2)
    targets = torch.from_numpy(np.unique(y, return_inverse=True)[1]).to(device)

    def batches():
        order = torch.randperm(len(images)).to(device)
        for i in range(0, len(images), args.batch_size):
            index = order[i:i + args.batch_size]
            yield images[index], targets[index]

    _train(args, clf.module_, clf.optimizer_, batches, device)
    sync(device)
    return time.perf_counter() - start


def main(argv=None):
    parser = training_parser(__doc__)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    device, description = pick_device(args.device)
    cuda = device == "cuda"
    args.image_size = args.image_size or (224 if cuda else 32)
    args.n_images = args.images or (32 if args.quick else (1280 if cuda else 96))
    args.batch_size = args.batch_size or (8 if args.quick else (10 if cuda else 16))
    args.epochs = 1 if args.quick else 2
    repeats = args.repeats or (1 if args.quick else 3)
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (args.n_images, args.image_size, args.image_size, 3),
                     dtype=np.uint8)
    y = np.array([f"class{i % 4}" for i in range(args.n_images)])
    runs = {"VGG19LeukocyteClassifier.fit": time_classifier,
            "plain loop, DataLoader": time_dataloader_loop,
            "plain loop, tensors on device": time_on_device_loop}
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            times[name].append(run(args, X, y, device))
    n = args.n_images * args.epochs
    ips = {name: n / statistics.median(t) for name, t in times.items()}
    print(f"device: {description}")
    print(f"setup: {args.n_images} images {args.image_size}px, batch "
          f"{args.batch_size}, {args.epochs} epoch(s), {repeats} repeat(s), "
          f"{precision_name(args.amp, args.channels_last)}")
    for name, value in ips.items():
        print(f"{name + ':':32s}{value:9.1f} images/s")
    best = max(v for k, v in ips.items() if k.startswith("plain"))
    ratio = ips["VGG19LeukocyteClassifier.fit"] / best
    print(f"{'ratio (classifier / best plain):':32s}{ratio:9.3f}")
    return ratio


if __name__ == "__main__":
    main()
