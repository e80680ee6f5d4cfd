"""Draw what the cell-centred view shows the network, and how often it finds a cell.

For three random images per class of a PBC folder and of each ``--lab``
folder: the image (resized to the model's decode size) above the square
:func:`leukosk.nn._cellview.locate_cells` keeps, resized to 64 px. Prints, per
folder and class, the share of images in which a nucleus was found and the
median side of the square (fraction of the image).

    python benchmarks/plot_cell_view.py ../shared/data/PBC_dataset_normal_DIB \\
        --lab ../shared/data/other_labs/tecom --out docs/results/cell_view.jpg
"""

import argparse
import json
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from leukosk.nn._cellview import crop_boxes, locate_cells
from leukosk.datasets import PBCDataWarning, load_pbc

SIZE = 128


def boxes(images, batch=512):
    out, found = [], []
    for start in range(0, len(images), batch):
        x = torch.from_numpy(images[start:start + batch]).permute(0, 3, 1, 2)
        b, f = locate_cells(x)
        out.append(b)
        found.append(f)
    return torch.cat(out), torch.cat(found).numpy()


def summary(name, data, box, found):
    side = (box[:, 2] - box[:, 0]).numpy()
    rows = {}
    for label in np.unique(data.target):
        mask = data.target == label
        rows[str(label)] = {"n": int(mask.sum()), "found": round(float(found[mask].mean()), 3),
                            "median_side": round(float(np.median(side[mask])), 2)}
    print(json.dumps({"folder": name, "found_overall": round(float(found.mean()), 4),
                      "per_class": rows}))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir")
    p.add_argument("--lab", action="append", default=[])
    p.add_argument("--out", default="cell_view.jpg")
    p.add_argument("--per-class", type=int, default=3)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    picked = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PBCDataWarning)
        folders = [("PBC", load_pbc(args.data_dir, image_size=SIZE, verbose=False))]
        folders += [(lab.rstrip("/").split("/")[-1],
                     load_pbc(lab, image_size=SIZE, cache=False, verbose=False))
                    for lab in args.lab]
    for name, data in folders:
        box, found = boxes(data.images)
        summary(name, data, box, found)
        for label in np.unique(data.target):
            index = np.flatnonzero(data.target == label)
            for i in rng.choice(index, min(args.per_class, len(index)), replace=False):
                picked.append((f"{name}: {label}", data.images[i], box[i]))
    columns = 12
    rows = -(-len(picked) // columns)
    fig, axes = plt.subplots(2 * rows, columns, figsize=(columns * 1.1, rows * 2.3))
    for ax in axes.flat:
        ax.axis("off")
    for k, (title, image, box) in enumerate(picked):
        r, c = divmod(k, columns)
        view = crop_boxes(torch.from_numpy(image).permute(2, 0, 1)[None].float(),
                          box[None], 64)[0].permute(1, 2, 0).clamp(0, 255).byte().numpy()
        axes[2 * r, c].imshow(image)
        axes[2 * r, c].set_title(title, fontsize=5)
        axes[2 * r + 1, c].imshow(view)
    fig.tight_layout()
    fig.savefig(args.out, dpi=72, pil_kwargs={"quality": 85})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
