"""The white-cell finder (issue 30): each lab's crops read as fields,
synthetic fields by scale, fields of pasted real cells (and, with a model,
the cells found classified against their crops), and speed against decoding
alone, in one run.

* ``DATA_DIR`` (a PBC-layout folder, e.g. the development part) and each
  ``--paste`` lab's folder: every image read as a field; per class, the share
  with exactly one box holding the image's centre, with a box there at all,
  and the other boxes (platelet crops: the share with none);
* synthetic fields (``tests/test_fields.py``'s generator: red cells and 0-3
  white cells on a plain background, exact centres) at red-cell diameters
  from 8 to 40 px (white cells about 30-100 px across with their cytoplasm):
  recall and precision per scale;
* fields of real cells (``--paste LAB=DIR``, one or more labs' single-cell
  crops): 640x480 fields tiled from the corners of the lab's own crops (its
  red cells, stain and background; corners holding a piece of a white cell
  left out), with 0-3 crops of white cells pasted under a soft round mask,
  at a random size of the white cell of 30-250 px (one per field), the
  background scaled with them so that red cells keep their proportion to the
  white ones; a found box is right when its centre lies in a pasted cell's
  box (one per cell): recall and precision per lab and per size. With
  ``--model``, each cell found is classified from its box (as ``leukosk
  predict --fields`` does) and the same cell's crop file as a crop; the cells
  of a lab named by ``--never-seen`` come from the 20 % side of its 80/20
  split only, which the shipped models never trained on (PBC's and
  Raabin-WBC's: the model is not scored on its training images);
* speed: 640x480 JPEG fields per second, decoding included, against decoding
  alone (the ratio is what the finder costs).

``--records PATH`` writes the figures as provenance records (``--machine``).

    python benchmarks/bench_fields.py ../shared/data/PBC_dataset_normal_DIB \
        --paste pbc=../shared/data/PBC_dataset_normal_DIB \
        --paste raabin=../shared/data/other_labs/raabin \
        --paste tecom=../shared/data/other_labs/tecom --never-seen pbc \
        --never-seen raabin --model default --out fields.json
"""

import argparse
import io
import json
import sys
import timeit
from pathlib import Path

import numpy as np
from _common import add_record_options, make_record, pick_device, resolve_machine, \
    script_command, write_records
from PIL import Image
from v4_recipe import halves, load

from leukosk.datasets import list_images
from leukosk.fields import crop_cells, find_white_cells, read_cells
from leukosk.utils._images import decode_image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_fields import _matched, synthetic_field, tally_crops  # noqa: E402


def _found(label, paths):
    for path in paths:
        try:
            yield label, find_white_cells(path)
        except ValueError:  # PBC's file that is not an image
            continue


def crops_as_fields(folder, limit=None, seed=0):
    """Each single-cell crop of a lab read as a field: per class, the share
    with exactly one box holding the image's centre, the share with a box
    there (recall) and the boxes elsewhere (neighbours cut by the crop's
    border, red cells, debris: precision); platelet crops: the share with
    none."""
    rng = np.random.default_rng(seed)
    out = {}
    for label in sorted(p.name for p in Path(folder).iterdir() if p.is_dir()):
        files = list_images(Path(folder) / label)
        if limit and len(files) > limit:
            files = [files[i] for i in sorted(rng.choice(len(files), limit, replace=False))]
        counts = tally_crops(_found(label, files))
        out[label] = {**counts, "rate": round(counts["right"] / max(counts["n"], 1), 4),
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


#: Each lab's crops: the white cell's diameter as a share of the crop's side
#: (PBC's CellaVision crops and Raabin's show it with red cells around;
#: tecom's cell fills most of its frame), measured by eye on a few crops.
CELL_SHARE = {"pbc": 0.45, "raabin": 0.4, "tecom": 0.8}
SIZE_BINS = ((30, 60), (60, 120), (120, 250))


def _crops(files, limit, rng, skip=("platelet",)):
    """``limit`` of ``files`` (paths of single-cell crops) drawn by ``rng``,
    none of the classes in ``skip``."""
    files = [f for f in files if Path(f).parent.name not in skip]
    return [files[i] for i in rng.choice(len(files), min(limit, len(files)), replace=False)]


def _background(tiles, scale, shape, rng):
    """A field tiled from ``tiles`` (arrays of red cells), scaled by ``scale``
    to one side (the median tile's), so that the tiles leave no gap."""
    field = np.zeros((*shape, 3), np.uint8)
    side = max(8, int(round(np.median([t.shape[1] for t in tiles]) * scale)))
    for y in range(0, shape[0], side):
        for x in range(0, shape[1], side):
            tile = Image.fromarray(tiles[rng.integers(len(tiles))])
            tile = np.asarray(tile.resize((side, side), Image.Resampling.BILINEAR))
            h, w = min(side, shape[0] - y), min(side, shape[1] - x)
            field[y:y + h, x:x + w] = tile[:h, :w]
    return field


def _nucleus_like(tile):
    """Whether a tile holds a piece of a white cell: its darkest 0.5 % far
    darker in green (below a third) than its brightest tenth. The corners of
    many crops hold part of a neighbouring white cell, which no pasted box
    names; such tiles are left out (and black padding: no tile has it)."""
    green = tile[..., 1].astype(float)
    return bool(np.quantile(green, 0.005) < np.quantile(green, 0.9) / 3
                or (tile.max(axis=2) <= 40).mean() > 0.01)


def _corners(files, rng, n=60):
    """Red-cell tiles of a lab: the four corner squares (a quarter of the side)
    of some of its crops, where the white cell is not; with the crop's side."""
    tiles = []
    for path in (files[i] for i in rng.choice(len(files), min(n, len(files)),
                                              replace=False)):
        image = decode_image(path)
        q = min(image.shape[:2]) // 4
        tiles += [t for t in (image[:q, :q], image[:q, -q:], image[-q:, :q],
                              image[-q:, -q:])
                  if not _nucleus_like(t)]
    return tiles, min(image.shape[:2])


def _paste(field, crop, cy, cx, side):
    """``crop`` resized to ``side`` px, blended in with a soft round mask."""
    cell = np.asarray(Image.fromarray(crop).resize((side, side), Image.Resampling.BILINEAR),
                      float)
    yy, xx = np.mgrid[:side, :side] - (side - 1) / 2
    r = np.hypot(yy, xx) / (side / 2)
    mask = np.clip((1.0 - r) / 0.15, 0, 1)[..., None]
    top, left = cy - side // 2, cx - side // 2
    region = field[top:top + side, left:left + side].astype(float)
    field[top:top + side, left:left + side] = np.round(
        mask * cell + (1 - mask) * region).astype(np.uint8)


def pasted_field(crops, lab, tiles, rng, shape=(480, 640)):
    """One field of real cells of ``lab`` on its own red cells (``tiles``:
    arrays and the side of the crops they come from); returns it and the
    cells' boxes (``x0, y0, x1, y1``, the cell's size, the crop's path)."""
    size = float(np.exp(rng.uniform(np.log(30), np.log(250))))  # the white cell, px
    n = int(rng.integers(0, 4))
    chosen = [crops[i] for i in rng.choice(len(crops), n, replace=False)]
    picks = [decode_image(path) for path in chosen]
    sides = [int(round(size / CELL_SHARE[lab])) for _ in picks]
    # the background at the scale of the pasted crops: red cells keep their size
    tiles, crop_side = tiles
    field = _background(tiles, size / (CELL_SHARE[lab] * crop_side), shape, rng)
    boxes, taken = [], []
    for path, crop, side in zip(chosen, picks, sides):
        half = side // 2
        for _ in range(100):
            cy = int(rng.integers(half, max(half + 1, shape[0] - half)))
            cx = int(rng.integers(half, max(half + 1, shape[1] - half)))
            if cy - half + side <= shape[0] and cx - half + side <= shape[1] and all(
                    abs(cy - y) > (half + h) * 0.8 or abs(cx - x) > (half + h) * 0.8
                    for y, x, h in taken):
                break
        else:
            continue
        _paste(field, crop, cy, cx, side)
        taken.append((cy, cx, half))
        r = size / 2
        boxes.append((cx - r, cy - r, cx + r, cy + r, size, path))
    return field, boxes


def _right(found, boxes):
    """Pairs (found box, pasted cell) where the pasted cell's box holds the
    found box's centre, one per cell."""
    free = list(range(len(boxes)))
    pairs = []
    for i, (x0, y0, x1, y1) in enumerate(found):
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        inside = [j for j in free if boxes[j][0] <= cx <= boxes[j][2]
                  and boxes[j][1] <= cy <= boxes[j][3]]
        if inside:
            free.remove(inside[0])
            pairs.append((i, inside[0]))
    return pairs


def _size_bin(size):
    return next((b for b in SIZE_BINS if b[0] <= size <= b[1]), SIZE_BINS[-1])


def never_seen_side(folder):
    """The crops of the 20 % side of ``folder``'s duplicate-aware stratified
    80/20 split (``random_state=0``), the side that the shipped models V3 and
    V4 never trained on (``v4_recipe.py`` trains on the 80 % side)."""
    data = load(folder, None)  # no size: paths only, nothing decoded
    _, test = halves(data)
    return [data.filenames[i] for i in test]


def real_cell_fields(labs, n_fields, clf=None, seed=0, never_seen=(), **finder):
    """Recall and precision on fields of pasted real cells, per lab and size;
    with ``clf``, the accuracy of the cells found (classified from their
    boxes, as ``leukosk predict --fields`` does) against the same cells'
    crops classified as crops. The cells of a lab in ``never_seen`` come from
    its :func:`never_seen_side` only. ``finder``: settings of the finder."""
    rng = np.random.default_rng(seed)
    out = {}
    for lab, folder in labs.items():
        crops = _crops(never_seen_side(folder) if lab in never_seen else
                       list_images(folder), 400, rng)
        tiles = _corners(crops, rng)
        bins = {b: {"white_cells": 0, "found": 0, "hits": 0} for b in SIZE_BINS}
        cells, truths = [], []  # found cells' crops; (crop path, size bin)
        for _ in range(n_fields):
            field, boxes = pasted_field(crops, lab, tiles, rng)
            found = find_white_cells(field, **finder).boxes
            pairs = _right(found, boxes)
            size = boxes[0][4] if boxes else float(rng.uniform(30, 250))
            b = _size_bin(size)
            bins[b]["white_cells"] += len(boxes)
            bins[b]["found"] += len(found)
            bins[b]["hits"] += len(pairs)
            if clf is not None and pairs:
                cells.append(crop_cells(field, found[[i for i, _ in pairs]],
                                        clf.decode_size_))
                truths += [(boxes[j][5], b) for _, j in pairs]
        out[lab] = {f"{lo}-{hi}px": _rates(v) for (lo, hi), v in bins.items()}
        out[lab]["all"] = _rates({k: sum(v[k] for v in bins.values())
                                  for k in ("white_cells", "found", "hits")})
        if clf is not None and truths:
            out[lab]["classified"] = _found_vs_crops(clf, np.concatenate(cells), truths)
    return out


def _rates(v):
    return {"white_cells": v["white_cells"], "found": v["found"],
            "recall": round(v["hits"] / max(v["white_cells"], 1), 4),
            "precision": round(v["hits"] / max(v["found"], 1), 4)}


def _found_vs_crops(clf, found_crops, truths):
    """Accuracy of the cells found (their crops from the field) and of the
    same cells' own crop files, per size bin and in all."""
    paths = [path for path, _ in truths]
    labels = np.array([Path(path).parent.name for path in paths])
    on_field = clf.predict(found_crops) == labels
    as_crops = clf.predict(read_cells(paths, clf.decode_size_)) == labels
    sizes = np.array([f"{lo}-{hi}px" for (lo, hi) in (b for _, b in truths)])
    out = {}
    for name in [f"{lo}-{hi}px" for lo, hi in SIZE_BINS] + ["all"]:
        where = sizes == name if name != "all" else np.ones(len(sizes), bool)
        if where.any():
            out[name] = {"n": int(where.sum()),
                         "found_cells": round(float(on_field[where].mean()), 4),
                         "crops": round(float(as_crops[where].mean()), 4)}
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
        # timeit's autorange: untimed first calls, then passes of at least
        # 0.2 s (decoding 60 fields alone takes under 0.1 s: too short to time)
        timer = timeit.Timer(job)
        loops, _ = timer.autorange()
        times[name] = n * loops / float(np.median(timer.repeat(repeats, loops)))
    return {"fields": n, "size": "640x480 JPEG (quality 90)",
            "decode_per_s": round(times["decode"], 1),
            "find_per_s": round(times["find"], 1),
            "ratio": round(times["find"] / times["decode"], 3)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir", nargs="?")
    p.add_argument("--limit", type=int, default=None, help="images per class")
    p.add_argument("--fields", type=int, default=40, help="synthetic fields per scale")
    p.add_argument("--paste", action="append", default=[], metavar="LAB=DIR",
                   help="real cells of a lab to paste into fields (pbc, raabin, tecom)")
    p.add_argument("--real-fields", type=int, default=150, help="pasted fields per lab")
    p.add_argument("--model", default=None,
                   help="classify the cells found and the same cells' crops "
                        "(a model name or file, e.g. default)")
    p.add_argument("--never-seen", action="append", default=[], metavar="LAB",
                   help="paste LAB's cells from the 20 %% side of its 80/20 split only, "
                        "which the shipped models never trained on (pbc, raabin)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=None)
    add_record_options(p, default=None, option="--records")
    args = p.parse_args(argv)
    if set(args.never_seen) - {item.split("=", 1)[0] for item in args.paste}:
        p.error(f"--never-seen {args.never_seen}: name labs given with --paste")
    if args.quick:
        args.limit, args.fields, args.real_fields = 5, 4, 4
    # timed first, in a fresh process: after the synthetic fields' passes the
    # allocator's state made decoding alone (the baseline) about 4x slower
    record = {"device": pick_device("cpu")[1], "speed": speed(n=10 if args.quick else 60)}
    record["synthetic"] = synthetic([8, 12, 20, 30, 40], args.fields)
    labs = dict(item.split("=", 1) for item in args.paste)
    if args.data_dir:
        record["crops_as_fields"] = {"pbc": crops_as_fields(args.data_dir, args.limit)}
    for lab, folder in labs.items():  # each lab's crops as fields (PBC's read above)
        if not args.data_dir or Path(folder).resolve() != Path(args.data_dir).resolve():
            record.setdefault("crops_as_fields", {})[lab] = crops_as_fields(folder,
                                                                            args.limit)
    if labs:
        clf = None
        if args.model:
            from leukosk import load_model, resolve_model
            clf = load_model(args.model, device="cpu")
            record["model"] = str(getattr(resolve_model(args.model), "name", args.model))
        record["real_cell_fields"] = real_cell_fields(labs, args.real_fields, clf,
                                                      never_seen=args.never_seen)
        record["never_seen"] = args.never_seen
    print(json.dumps(record, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=2))
    if args.records:
        command = script_command(__file__, "DATA_DIR" if args.data_dir else "",
                                 *[f"--paste {lab}={lab.upper()}_DIR" for lab in labs],
                                 *[f"--never-seen {lab}" for lab in args.never_seen],
                                 *(["--model", args.model] if args.model else []))
        write_records(args.records, field_records(record, resolve_machine(args.machine),
                                                  command),
                      title="Issue 30: the white-cell finder on fields")


FINDER = "leukosk.fields.find_white_cells (defaults)"


def _crops_record(lab, per_class, common):
    """A lab's crops read as fields: one record of its rates."""
    cells = {k: v for k, v in per_class.items() if k != "platelet"}
    n = sum(v["n"] for v in cells.values())
    rates = {"one-box-at-centre": sum(v["right"] for v in cells.values()) / max(n, 1),
             "box-at-centre": sum(v["centre"] for v in cells.values()) / max(n, 1)}
    if "platelet" in per_class:
        rates["platelet-no-box"] = per_class["platelet"]["rate"]
    return make_record(f"fields-{lab}-crops", data=f"{lab}'s single-cell crops, each "
                       "read as a field", split="the crops read (white-cell classes; "
                       "platelets apart)", n=n, rates=rates,
                       values={"other-boxes": sum(v["other_boxes"] for v in cells.values()),
                               **({"platelet-crops": per_class["platelet"]["n"]}
                                  if "platelet" in per_class else {})},
                       **common)


def _pasted(lab, never_seen):
    """How the records name a lab's pasted fields (and the side its cells come from)."""
    side = " from its 20 % side (never trained on)" if lab in never_seen else ""
    return f"640x480 fields of real {lab} cells{side} pasted on its own red cells"


def field_records(record, machine, command):
    """The run's figures as provenance records (rates: recall, precision)."""
    common = dict(model=FINDER, tta=False, accuracy=None, macro_f1=None, machine=machine,
                  source=command)
    out = []
    for lab, bins in record.get("real_cell_fields", {}).items():
        for name, v in bins.items():
            if name == "classified" or not v["white_cells"]:
                continue
            out.append(make_record(
                f"fields-{lab}-{name.replace('-', 'to').replace('px', '')}",
                data=_pasted(lab, record.get("never_seen", ())),
                split=f"white cells {name}" if name != "all" else "white cells 30-250 px",
                n=v["white_cells"], rates={"recall": v["recall"],
                                           "precision": v["precision"]},
                values={"found": v["found"]}, **common))
    for lab, per_class in record.get("crops_as_fields", {}).items():
        out.append(_crops_record(lab, per_class, common))
    model = record.get("model")
    for lab, bins in record.get("real_cell_fields", {}).items():
        for name, v in bins.get("classified", {}).items():
            out.append(make_record(
                f"fields-{lab}-classified-{name.replace('-', 'to').replace('px', '')}",
                data=_pasted(lab, record.get("never_seen", ())),
                split=f"white cells found, {name if name != 'all' else '30-250 px'}",
                n=v["n"], rates={"found-cells": v["found_cells"], "crops": v["crops"]},
                note="the cells found, classified from their boxes, against the same "
                     "cells' own crop files classified as crops",
                **{**common, "model": model}))
    sp = record["speed"]
    out.append(make_record("fields-speed", data=f"{sp['fields']} synthetic fields, "
                           f"{sp['size']}",
                           split="all of them, median of 3 passes (each at least 0.2 s)",
                           n=sp["fields"], rates={"speed-vs-decoding": sp["ratio"]},
                           values={"fields-per-s": sp["find_per_s"],
                                   "decode-only-per-s": sp["decode_per_s"]},
                           note=f"finding runs at {sp['ratio']} times the speed of "
                                "decoding alone (decoding included)", **common))
    return out


if __name__ == "__main__":
    main()
