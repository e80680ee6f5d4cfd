"""Calibration and refer-to-expert numbers of a trained model on held-out PBC images (issue 15).

Loads a model saved by ``cpu_recipe_search.py --save`` together with the
``.npz`` written beside it (the test indices of its duplicate-aware 80/20
split), and runs :func:`leukosk.reports.trust_report` on those test images:
half of them (stratified) fit the temperature and the conformal thresholds,
the other half measure top-label ECE before and after, the coverage of the
90 % and 95 % prediction sets, the share of cells referred, the accuracy on
the others and the referral rate per class. Writes ``trust.json`` and the
figures to ``--out``.

    python benchmarks/trust_experiment.py ../shared/data/PBC_dataset_normal_DIB \\
        --model MODEL.safetensors --out trust-r4
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _common import load_folder, pick_device

from leukosk import VGG19LeukocyteClassifier
from leukosk.reports import trust_markdown, trust_report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir")
    parser.add_argument("--model", required=True)
    parser.add_argument("--split", default=None,
                        help="the .npz of test indices (default: MODEL.npz)")
    parser.add_argument("--out", default="trust-experiment")
    parser.add_argument("--calibration-fraction", type=float, default=0.5)
    args = parser.parse_args(argv)
    clf = VGG19LeukocyteClassifier.load(args.model, verbose=0)
    split = np.load(args.split or args.model + ".npz", allow_pickle=False)
    load_size = round(clf.image_size / clf.network_settings()["module"].get("crop", 1.0))
    data = load_folder(args.data_dir, load_size)
    test = split["test"]
    if not np.array_equal(data.target[test], split["y_test"]):
        raise SystemExit("the split file does not match this data folder")
    began = time.perf_counter()
    summary, figures = trust_report(clf, data.images[test], data.target[test],
                                    calibration_fraction=args.calibration_fraction)
    summary["seconds"] = round(time.perf_counter() - began, 1)
    summary["machine"] = pick_device()[1]
    summary["model"] = Path(args.model).name
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, fig in figures.items():
        fig.savefig(out / f"{name}.png", dpi=110)
    (out / "trust.json").write_text(json.dumps(summary, indent=2, default=str))
    (out / "trust.md").write_text(trust_markdown(summary))
    print(trust_markdown(summary))
    for level, row in summary["conformal"].items():
        print(level, json.dumps(row["referred_by_class"]))


if __name__ == "__main__":
    main()
