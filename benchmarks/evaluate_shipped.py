"""Score shipped models on the bundled sample, with and without TTA, and record it.

The 160 PBC images shipped with leukosk (20 per class, kept out of the
shipped models' training) are decoded as ``leukosk evaluate`` decodes a
folder; each model is scored on all of them, without and with test-time
augmentation (accuracy, macro-F1). The records go to ``--record`` (by
default the provenance table's ``docs/results/shipped_models.json``), ids
``v1-sample``, ``v1-sample-tta`` etc. Seconds on a CPU.

    python benchmarks/evaluate_shipped.py PBC_VGG19BN_W25_64PX_V1 PBC_VGG19BN_W25_64PX_V2

``--quick`` scores the first 2 images per class, for tests; its records are
not the published ones (write them elsewhere).
"""

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
from _common import add_record_options, make_record, resolve_machine, write_records
from _records import RESULTS_DIR, script_command
from sklearn.metrics import accuracy_score, f1_score

from leukosk.datasets import PBCDataWarning, load_pbc
from leukosk.datasets import sample_folder
from leukosk.weights._shipped import LeukoskWeights

DEFAULT_RECORD = RESULTS_DIR / "shipped_models.json"
DATA = "bundled PBC sample (kept out of training)"


def version(name):
    """``V1`` of ``PBC_VGG19BN_W25_64PX_V1``."""
    return name.rsplit("_", 1)[-1].upper()


def evaluate(name, images, target, machine, command, split="all of it", data=DATA):
    from leukosk import load_pretrained

    clf = load_pretrained(LeukoskWeights[name], device="cpu", verbose=0)
    records = []
    for tta in (False, True):
        pred = clf.set_params(tta=tta).predict(images)
        records.append(make_record(
            f"{version(name).lower()}-sample" + ("-tta" if tta else ""),
            model=f"{version(name)} ({name})", data=data, split=split, n=len(target),
            tta=tta, machine=machine, accuracy=accuracy_score(target, pred),
            macro_f1=f1_score(target, pred, average="macro"),
            source=command))
    return records


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="names of shipped models")
    parser.add_argument("--quick", action="store_true",
                        help="2 images per class (a smoke test, not the published run)")
    add_record_options(parser, default=str(DEFAULT_RECORD), data=DATA)
    args = parser.parse_args(argv)
    machine = resolve_machine(args.machine)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PBCDataWarning)
        data = load_pbc(sample_folder(), verbose=False, cache=False)
    images, target = data.images, data.target
    split = "all of it"
    if args.quick:
        keep = np.concatenate([np.flatnonzero(target == c)[:2] for c in np.unique(target)])
        images, target, split = images[keep], target[keep], "first 2 images per class"
    records = []
    for name in args.models:
        command = script_command(__file__, name, "--quick" if args.quick else "")
        records += evaluate(name, images, target, machine, command, split, args.record_data)
    for record in records:
        print(json.dumps(record))
    if args.record:
        write_records(Path(args.record), records,
                      title="The shipped models and their recipes")
        print(f"records written to {args.record}")


if __name__ == "__main__":
    main()
