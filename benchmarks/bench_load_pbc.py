"""load_pbc decode+resize throughput vs a plain PIL loop, and the cache speedup.

On the same files: ``load_pbc(..., image_size=S, cache=False)`` (threads,
hashing, checks) against a single-threaded loop that opens each JPEG with PIL,
converts it to RGB and resizes it (``Image.resize``, bilinear), at S = 224
and 64. Then a cached reload against the uncached load.

    python benchmarks/bench_load_pbc.py ../shared/data/PBC_dataset_normal_DIB
    python benchmarks/bench_load_pbc.py DATA_DIR --quick
"""

import argparse
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from _common import pick_device
from PIL import Image

from leukosk.datasets import load_pbc


def subset(folder, per_class, into):
    """A PBC-layout copy of the first ``per_class`` files of each class."""
    for class_dir in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        (into / class_dir.name).mkdir(parents=True)
        for f in sorted(class_dir.iterdir())[:per_class]:
            shutil.copyfile(f, into / class_dir.name / f.name)
    return into


def pil_loop(folder, size):
    images = []
    for path in sorted(Path(folder).glob("*/*")):
        try:
            with Image.open(path) as img:
                images.append(np.asarray(img.convert("RGB").resize(
                    (size, size), Image.BILINEAR)))
        except OSError:
            continue
    return np.stack(images)


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir")
    parser.add_argument("--per-class", type=int, default=None,
                        help="copy this many files per class first (default: all)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    per_class = 20 if args.quick else args.per_class
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        folder = (subset(args.data_dir, per_class, Path(tmp) / "pbc")
                  if per_class else Path(args.data_dir))
        n = sum(1 for _ in folder.glob("*/*"))
        print(f"device: {pick_device('cpu')[1]}; {n} files in {folder}")
        for size in (224, 64):
            plain_s, plain = timed(pil_loop, folder, size)
            ours_s, data = timed(load_pbc, folder, image_size=size, cache=False,
                                 verbose=False)
            print(f"{size:3d}px: load_pbc {len(data.target) / ours_s:7.1f} img/s, "
                  f"PIL loop {len(plain) / plain_s:7.1f} img/s, "
                  f"ratio {plain_s / ours_s:5.2f}")
        cache = Path(tmp) / "cache"
        cold_s, _ = timed(load_pbc, folder, image_size=64, cache=cache, verbose=False)
        warm_s, _ = timed(load_pbc, folder, image_size=64, cache=cache, verbose=False)
        print(f"cache at 64px: first load {cold_s:.2f} s, cached reload "
              f"{warm_s:.3f} s, speedup {cold_s / warm_s:.0f}x")


if __name__ == "__main__":
    main()
