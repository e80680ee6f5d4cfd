"""How the white-cell finder's settings were chosen (issue 30): each setting
scored on seeded samples of each lab's single-cell crops read as fields, one
JSON line per setting appended to a log.

Per lab: the share of crops of a white cell with a box holding the centre
(recall), with exactly that one box, the other boxes per crop, and the share
of platelet crops with no box; and recall and precision on ``--pasted``
fields of the lab's cells pasted on its own red cells (``bench_fields.py``'s
fields, the same for every setting). The samples are fixed by ``--seed``, so
two settings are compared on the same crops.

    python benchmarks/tune_fields.py --lab pbc=../shared/data/PBC_dataset_normal_DIB \\
        --lab raabin=../shared/data/other_labs/raabin \\
        --lab tecom=../shared/data/other_labs/tecom \\
        --settings '[{}, {"core": 0.35}, {"merge": null}]' \\
        --log docs/results/fields_tuning.jsonl
"""

import argparse
import datetime
import inspect
import json
from pathlib import Path

import numpy as np
from _common import resolve_machine
from bench_fields import real_cell_fields, tally_crops

from leukosk.datasets import list_images
from leukosk.fields import find_white_cells
from leukosk.utils._images import decode_image


#: The finder's defaults, written beside each setting tried (the defaults may change).
DEFAULTS = {name: p.default for name, p in
            inspect.signature(find_white_cells).parameters.items()
            if p.kind is p.KEYWORD_ONLY}


def sample(folder, per_class, rng):
    """``(class, image)`` pairs: ``per_class`` seeded crops of each class."""
    items = []
    for label in sorted(p.name for p in Path(folder).iterdir() if p.is_dir()):
        files = list_images(Path(folder) / label)
        for i in sorted(rng.choice(len(files), min(per_class, len(files)), replace=False)):
            try:
                items.append((label, decode_image(files[i])))
            except ValueError:  # a file that is not an image
                continue
    return items


def score(items, **settings):
    """The finder with ``settings`` on one lab's sample."""
    found = [(label, find_white_cells(image, **settings)) for label, image in items]
    cells = tally_crops((label, f) for label, f in found if label != "platelet")
    n = cells["n"]
    out = {"n": n, "box-at-centre": round(cells["centre"] / n, 4),
           "one-box-at-centre": round(cells["right"] / n, 4),
           "other-boxes-per-crop": round(cells["other_boxes"] / n, 4)}
    platelets = tally_crops((label, f) for label, f in found if label == "platelet")
    if platelets["n"]:
        out["platelet-no-box"] = round(platelets["right"] / platelets["n"], 4)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lab", action="append", required=True, metavar="NAME=DIR")
    p.add_argument("--per-class", type=int, default=25)
    p.add_argument("--settings", default="[{}]", help="a JSON list of finder settings")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--pasted", type=int, default=100,
                   help="fields of pasted cells per lab (bench_fields.py's, seed 0; 0: none)")
    p.add_argument("--log", required=True, help="a JSON-lines file, appended to")
    p.add_argument("--machine", default=None)
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    folders = dict(item.split("=", 1) for item in args.lab)
    labs = {name: sample(folder, args.per_class, rng) for name, folder in folders.items()}
    for settings in json.loads(args.settings):
        line = {"settings": settings, "all_settings": {**DEFAULTS, **settings},
                "seed": args.seed, "per_class": args.per_class,
                "labs": {name: score(items, **settings) for name, items in labs.items()},
                "pasted": {lab: v["all"] for lab, v in real_cell_fields(
                    folders, args.pasted, **settings).items()} if args.pasted else None,
                "machine": resolve_machine(args.machine),
                "date": datetime.date.today().isoformat()}
        print(json.dumps(line), flush=True)
        with open(args.log, "a", encoding="utf-8") as log:
            log.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
