"""The white-cell finder (issue 30): PBC crops read as fields, synthetic fields
by scale, and speed against decoding alone, in one run.

* ``DATA_DIR`` (a PBC-layout folder, e.g. the development part): every image
  read as a field; per class, the share with exactly one box holding the
  image's centre (platelet crops: the share with none);
* synthetic fields (``tests/test_fields.py``'s generator: red cells and 0-3
  white cells on a plain background, exact centres) at red-cell diameters
  from 8 to 40 px (white cells about 30-100 px across with their cytoplasm):
  recall and precision per scale;
* speed: 640x480 JPEG fields per second, decoding included, against decoding
  alone (the ratio is what the finder costs).

    python benchmarks/bench_fields.py ../shared/data/PBC_dataset_normal_DIB --out fields.json
"""

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
from _common import pick_device
from PIL import Image

from leukosk.datasets import list_images
from leukosk.fields import find_white_cells
from leukosk.utils._images import decode_image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_fields import _matched, synthetic_field  # noqa: E402


def pbc_as_fields(folder, limit=None):
    out = {}
    for label in sorted(p.name for p in Path(folder).iterdir() if p.is_dir()):
        files = list_images(Path(folder) / label)[:limit]
        right = 0
        for path in files:
            try:
                found = find_white_cells(path)
            except ValueError:  # PBC's file that is not an image
                continue
            if label == "platelet":
                right += int(len(found.boxes) == 0)
                continue
            height, width = found.shape
            if len(found.boxes) == 1:
                x0, y0, x1, y1 = found.boxes[0]
                right += int(x0 <= width / 2 <= x1 and y0 <= height / 2 <= y1)
        out[label] = {"n": len(files), "right": right,
                      "rate": round(right / max(len(files), 1), 4),
                      "what": "no box" if label == "platelet" else
                              "exactly one box, holding the centre"}
    return out


def synthetic(scales, n_fields, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for red_cell in scales:
        truth = hits = boxes = 0
        for _ in range(n_fields):
            field, centres = synthetic_field(rng, int(rng.integers(0, 4)), red_cell=red_cell,
                                             shape=(480, 640),
                                             n_red=int(160 * (14 / red_cell) ** 2))
            found = find_white_cells(field)
            truth, boxes = truth + len(centres), boxes + int(len(found.boxes))
            hits += _matched(found.boxes, centres)
        out[str(red_cell)] = {"fields": n_fields, "white_cells": int(truth), "found": boxes,
                              "recall": round(hits / max(truth, 1), 4),
                              "precision": round(hits / max(boxes, 1), 4)}
    return out


def speed(n=60, repeats=3, seed=0):
    rng = np.random.default_rng(seed)
    jpegs = []
    for _ in range(n):
        field, _ = synthetic_field(rng, 2, shape=(480, 640), n_red=160)
        buffer = io.BytesIO()
        Image.fromarray(field).save(buffer, "JPEG", quality=90)
        jpegs.append(buffer.getvalue())
    files = [io.BytesIO(b) for b in jpegs]

    def decode_all():
        for f in files:
            f.seek(0)
            decode_image(f)

    def find_all():
        for f in files:
            f.seek(0)
            find_white_cells(decode_image(f))

    times = {}
    for name, job in (("decode", decode_all), ("find", find_all)):
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            job()
            runs.append(time.perf_counter() - start)
        times[name] = n / float(np.median(runs))
    return {"fields": n, "size": "640x480 JPEG (quality 90)",
            "decode_per_s": round(times["decode"], 1),
            "find_per_s": round(times["find"], 1),
            "ratio": round(times["find"] / times["decode"], 3)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir", nargs="?")
    p.add_argument("--limit", type=int, default=None, help="images per class")
    p.add_argument("--fields", type=int, default=40, help="synthetic fields per scale")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.limit, args.fields = 5, 4
    record = {"device": pick_device("cpu")[1],
              "synthetic": synthetic([8, 12, 20, 30, 40], args.fields),
              "speed": speed(n=10 if args.quick else 60)}
    if args.data_dir:
        record["pbc_as_fields"] = pbc_as_fields(args.data_dir, args.limit)
    print(json.dumps(record, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
