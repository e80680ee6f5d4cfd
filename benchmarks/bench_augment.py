"""Augmentation throughput: batched RandomReflectRotate vs per-image torchvision.

Both apply random horizontal and vertical reflection (p=0.5 each) and a
rotation drawn from 0-360 degrees with bilinear interpolation to the same
uint8 images. The baseline is the usual per-image pipeline,
``torchvision.transforms.v2`` ``RandomHorizontalFlip``, ``RandomVerticalFlip``
and ``RandomRotation`` applied image by image (as a Dataset's transform
would); leukosk augments whole batches with one ``grid_sample`` call on the
training device. Prints images/s of each and the ratio.

    python benchmarks/bench_augment.py            # full
    python benchmarks/bench_augment.py --quick    # CI-sized
"""

import argparse
import statistics
import time

import torch
from _common import pick_device, sync
from torchvision.transforms import v2

from leukosk import RandomReflectRotate


def batched(images, batch_size, device):
    aug = RandomReflectRotate(random_state=0)
    generator = aug.make_generator()
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size].to(device, non_blocking=True)
        aug.augment_batch(batch, generator)
    sync(device)


def per_image(images, batch_size, device):
    transform = v2.Compose([
        v2.RandomHorizontalFlip(0.5), v2.RandomVerticalFlip(0.5),
        v2.RandomRotation((0, 360), interpolation=v2.InterpolationMode.BILINEAR),
    ])
    for start in range(0, len(images), batch_size):
        batch = [transform(img) for img in images[start:start + batch_size]]
        torch.stack(batch).to(device)
    sync(device)


def measure(fn, images, batch_size, device, repeats):
    fn(images[:batch_size], batch_size, device)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(images, batch_size, device)
        times.append(time.perf_counter() - start)
    return len(images) / statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args(argv)
    device, description = pick_device(args.device)
    n = 64 if args.quick else 512
    batch_size = 32
    repeats = 1 if args.quick else 3
    torch.manual_seed(0)
    images = torch.randint(0, 256, (n, 3, args.size, args.size), dtype=torch.uint8)
    fast = measure(batched, images, batch_size, device, repeats)
    slow = measure(per_image, images, batch_size, device, repeats)
    print(f"device: {description}")
    print(f"setup: {n} uint8 images {args.size}x{args.size}, batches of "
          f"{batch_size}, {repeats} repeat(s), median")
    print(f"leukosk RandomReflectRotate (batched): {fast:9.1f} images/s")
    print(f"torchvision v2, per image:             {slow:9.1f} images/s")
    print(f"ratio (batched / per image):           {fast / slow:9.2f}")
    return fast / slow


if __name__ == "__main__":
    main()
