"""Figure for the docs: one cell per class from PBC and from another lab, side by side.

    python benchmarks/plot_lab_comparison.py ../shared/data/PBC_dataset_normal_DIB \\
        ../shared/data/other_labs/tecom --out docs/results/pbc_vs_tecom.png
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from leukosk.utils._images import decode_image


def first_image(folder):
    return next(p for p in sorted(Path(folder).iterdir())
                if not p.name.startswith(".") and p.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pbc_dir")
    parser.add_argument("lab_dir")
    parser.add_argument("--lab-name", default="tecom")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    classes = sorted(d.name for d in Path(args.lab_dir).iterdir() if d.is_dir())
    fig, axes = plt.subplots(2, len(classes), figsize=(2.1 * len(classes), 4.6))
    for j, name in enumerate(classes):
        for i, (root, label) in enumerate(((args.pbc_dir, "PBC"),
                                           (args.lab_dir, args.lab_name))):
            path = first_image(Path(root) / name)
            image = decode_image(path)
            axes[i, j].imshow(image)
            axes[i, j].set_title(f"{label}: {name}\n{image.shape[1]}x{image.shape[0]} px",
                                 fontsize=8)
            axes[i, j].axis("off")
    fig.tight_layout()
    fig.savefig(args.out, dpi=70)


if __name__ == "__main__":
    main()
