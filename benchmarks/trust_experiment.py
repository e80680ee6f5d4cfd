"""Calibration and refer-to-expert numbers of a trained model on held-out PBC images (issue 15).

Loads a model saved by ``cpu_recipe_search.py --save`` together with the
``.npz`` written beside it (the test indices of its duplicate-aware 80/20
split), and runs :func:`leukosk.reports.trust_report` on those test images:
half of them (stratified) fit the temperature and the conformal thresholds,
the other half measure top-label ECE before and after, the coverage of the
90 % and 95 % prediction sets, the share of cells referred, the accuracy on
the others and the referral rate per class. Writes ``trust.json`` and the
figures to ``--out``.

    python benchmarks/trust_experiment.py PBC_dataset_normal_DIB \\
        --model MODEL.safetensors --out trust-r4

With ``--record PATH`` the figures also go to the provenance table's results
file PATH, as one record (:func:`table_records`; ``--record-id``,
``--record-model``), which the trust page quotes.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _common import (add_record_options, load_folder, make_record, pick_device,
                     resolve_machine, script_command, write_records)

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
    add_record_options(parser)
    parser.add_argument("--record-id", default="v1-recipe-trust",
                        help="the record's id (with --record)")
    parser.add_argument("--record-model", default="V1 recipe (leukosk2026, seed 0)",
                        help="the model as the record names it (with --record)")
    args = parser.parse_args(argv)
    machine = resolve_machine(args.machine) if args.record else None
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
    if args.record:
        command = script_command(__file__, "DATA_DIR --model MODEL")
        write_records(args.record, [table_records(summary, machine, command, args.record_id,
                                                  args.record_model, args.record_data)],
                      title="Trust: calibration and conformal sets")


def _percent_name(level):
    return f"{float(level) * 100:g}"


def table_records(summary, machine, command, id="v1-recipe-trust",
                  model="V1 recipe (leukosk2026, seed 0)", data="PBC development part",
                  date=None):
    """The provenance-table record of a ``trust.json``: the accuracy on the
    measuring half, and as its rates the ECE before and after temperature
    scaling (``ece``, ``ece-temperature``) and, per coverage asked (90, 95),
    ``coverage-90``, ``referred-90``, ``accuracy-kept-90`` (accuracy on the
    cells not referred) and ``referred-90-CLASS``; the mean set size is a
    value (``set-size-90``)."""
    rates = {"ece": summary["ece_before"], "ece-temperature": summary["ece_after"]}
    values = {}
    for level, row in summary["conformal"].items():
        name = _percent_name(level)
        rates.update({f"coverage-{name}": row["coverage"],
                      f"referred-{name}": row["referred"],
                      f"accuracy-kept-{name}": row["accuracy_not_referred"]})
        rates.update({f"referred-{name}-{cls}": v
                      for cls, v in row["referred_by_class"].items()})
        values[f"set-size-{name}"] = round(row["mean_set_size"], 2)
    return make_record(
        id, model=model, data=data,
        split=f"80/20, test part: the {summary['n_test']:,} images not used to fit the "
              f"temperature and the thresholds (the other {summary['n_calibration']:,})",
        n=summary["n_test"], tta=False, accuracy=summary["accuracy"], rates=rates,
        values=values, machine=machine, source=command, date=date)


if __name__ == "__main__":
    main()
