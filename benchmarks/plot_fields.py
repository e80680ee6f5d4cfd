"""Draw the white cells the finder boxes on fields of several labs (issue 30).

Top row: one single-cell crop of each lab read as a field (PBC's CellaVision
crop, Raabin-WBC's, tecom's), the boxes of
:func:`leukosk.fields.find_white_cells` in yellow. Bottom row: fields built
from each lab's real cells pasted on its own red cells, at a small, a middle
and a large size of the white cell (``bench_fields.pasted_field``), the
pasted cells' boxes in green. The finder is deterministic and needs no model;
the title names the data and the seed.

    python benchmarks/plot_fields.py ../shared/data/PBC_dataset_normal_DIB \\
        --lab raabin=../shared/data/other_labs/raabin \\
        --lab tecom=../shared/data/other_labs/tecom --out docs/results/fields_boxes.jpg
"""

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from bench_fields import _corners, _crops, pasted_field  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from leukosk.datasets import list_images  # noqa: E402
from leukosk.fields import find_white_cells  # noqa: E402
from leukosk.utils._images import decode_image  # noqa: E402


def draw(ax, field, found, truth=(), title=""):
    ax.imshow(field)
    for x0, y0, x1, y1, *_ in truth:
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="#2ca02c",
                               lw=1.2))
    for x0, y0, x1, y1 in found:
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="#ffd400",
                               lw=2))
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def pasted_with(crops, lab, tiles, rng, low, high):
    """A pasted field whose white cells are ``low``-``high`` px, with one or more."""
    for _ in range(200):
        field, boxes = pasted_field(crops, lab, tiles, rng)
        if boxes and low <= boxes[0][4] <= high:
            return field, boxes
    raise RuntimeError("no such field drawn")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir", help="a PBC-layout folder")
    p.add_argument("--lab", action="append", default=[], metavar="NAME=DIR")
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    labs = {"pbc": args.data_dir, **dict(item.split("=", 1) for item in args.lab)}
    rng = np.random.default_rng(args.seed)
    fig, axes = plt.subplots(2, len(labs), figsize=(4.2 * len(labs), 7.2))
    sizes = [(30, 60), (60, 120), (120, 250)]
    for k, (lab, folder) in enumerate(labs.items()):
        crops = _crops(list_images(folder), 200, rng)
        crop = decode_image(crops[0])
        draw(axes[0, k], crop, find_white_cells(crop).boxes,
             title=f"{lab}: one crop read as a field ({crop.shape[1]}x{crop.shape[0]})")
        low, high = sizes[k % len(sizes)]
        field, boxes = pasted_with(crops, lab, _corners(crops, rng), rng, low, high)
        draw(axes[1, k], field, find_white_cells(field).boxes, boxes,
             title=f"{lab}: cells pasted at {boxes[0][4]:.0f} px on its red cells")
    fig.suptitle("leukosk.fields.find_white_cells (no model): found boxes yellow, pasted "
                 f"cells green; PBC development part, Raabin-WBC subset, tecom; seed "
                 f"{args.seed}", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)
    print(args.out)


if __name__ == "__main__":
    main()
