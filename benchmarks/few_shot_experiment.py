"""k-shot adaptation to another lab's images, from a trained model or from scratch (issue 16).

For each setting: ``n_draws`` random draws of ``k`` labelled images per class
of the lab's folder (fewer where a class has fewer; one per class is always
left to test) fine-tune the classifier, which is scored on the lab's other
images (accuracy and balanced accuracy, mean and sd over the draws); the
out-of-the-box score of the starting model (no label of the lab) is printed
first. Every run is appended to ``--log``.

    python benchmarks/few_shot_experiment.py ../shared/data/other_labs/tecom \\
        --model MODEL.safetensors --k 10 --draws 5

With ``--record PATH --record-id ID --record-model TEXT`` the out-of-the-box
scores (no label of the lab) also go to the provenance table's results file
PATH, record ``ID`` for the model's own crop and ``ID-crop1`` (etc.) for
``--crop 1.0``, as the records ``v1-tecom``, ``v2-tecom-crop1`` ... were
measured.
"""

import argparse
import itertools
import json
import time
import warnings

import sys
from pathlib import Path

from _common import (add_record_options, make_record, pick_device, resolve_machine,
                     script_command, write_records)
from _records import recorded_argv

from leukosk import VGG19LeukocyteClassifier
from leukosk.weights._shipped import resolve_leukosk_weights
from leukosk.adapt import adapt_batch_norm
from leukosk.datasets import PBCDataWarning, load_pbc
from leukosk.model_selection import few_shot_scores, score_present_classes
from leukosk.protocols import few_shot_classifier, lab_shift_augmentations


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lab_dir")
    parser.add_argument("--model", required=True, help="a model file, or 'default'")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--epochs", type=int, nargs="+", default=[None])
    parser.add_argument("--lr", type=float, nargs="+", default=[None])
    parser.add_argument("--train", nargs="+", default=["all"], choices=["all", "head"])
    parser.add_argument("--crop", type=float, nargs="+", default=[None],
                        help="override the model's central crop (1.0: the whole image, "
                             "for labs whose cell fills the frame)")
    parser.add_argument("--adabn", action="store_true",
                        help="also score out of the box after AdaBN on the lab's images")
    parser.add_argument("--labshift", action="store_true",
                        help="adapt with the lab-shift augmenters too")
    parser.add_argument("--tta", action="store_true",
                        help="score the adapted model with test-time augmentation")
    parser.add_argument("--scratch", action="store_true",
                        help="also adapt from random weights (same network)")
    parser.add_argument("--log", default="few_shot_runs.jsonl")
    add_record_options(parser, data="tecom set (another lab, 5 classes)")
    parser.add_argument("--record-id", default=None, help="the records' id (with --record)")
    parser.add_argument("--record-model", default=None,
                        help="the model as the records name it (with --record)")
    args = parser.parse_args(argv)
    if args.record and not (args.record_id and args.record_model):
        parser.error("--record needs --record-id and --record-model")
    machine = resolve_machine(args.machine) if args.record else None
    table = []
    weights = "DEFAULT" if args.model == "default" else args.model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PBCDataWarning)
        lab = load_pbc(args.lab_dir, image_size=None, verbose=False, cache=False)
    path = resolve_leukosk_weights(weights).path if weights == "DEFAULT" else weights
    records = []
    for crop in args.crop:
        base = VGG19LeukocyteClassifier.load(
            path, verbose=0, tta=args.tta, **({} if crop is None else {"module__crop": crop}))
        out_of_box = score_present_classes(base, lab.images, lab.target)
        records.append({"setting": "out of the box" + (", TTA" if args.tta else ""),
                        "crop": crop,
                        "accuracy": out_of_box.accuracy,
                        "balanced_accuracy": out_of_box.balanced_accuracy})
        print(json.dumps(records[-1]))
        if args.record:
            words = recorded_argv(sys.argv[1:] if argv is None else list(argv),
                                  positional="LAB_DIR")
            table.append(make_record(
                args.record_id + ("" if crop is None else f"-crop{crop:g}")
                + ("-tta" if args.tta else ""),
                model=args.record_model + (", crop 0.6 as shipped" if crop is None
                                           else f", module__crop={crop:g}"),
                data=args.record_data, split="all of it", n=len(lab.target),
                tta=args.tta, machine=machine, accuracy=out_of_box.accuracy,
                balanced_accuracy=out_of_box.balanced_accuracy,
                source=script_command(__file__, *words)))
        if args.adabn:  # the lab's images, unlabelled, re-estimate batch norm
            adapted = score_present_classes(adapt_batch_norm(base, lab.images),
                                            lab.images, lab.target)
            records.append({"setting": "out of the box + AdaBN" + (", TTA" if args.tta else ""),
                            "crop": crop,
                            "accuracy": adapted.accuracy,
                            "balanced_accuracy": adapted.balanced_accuracy})
            print(json.dumps(records[-1]))
    starts = [("trained", weights)] + ([("scratch", None)] if args.scratch else [])
    for start_name, start in starts:
        for train in args.train:
            for epochs, lr, crop in itertools.product(args.epochs, args.lr, args.crop):
                params = {k: v for k, v in (("max_epochs", epochs), ("lr", lr),
                                            ("module__crop", crop)) if v is not None}
                if args.tta:
                    params["tta"] = True
                if args.labshift:
                    params["augment"] = lab_shift_augmentations(random_state=0)
                clf = few_shot_classifier(start, train=train, random_state=0,
                                          reference=weights, **params)
                began = time.perf_counter()
                scores = few_shot_scores(clf, lab.images, lab.target, k=args.k,
                                         n_draws=args.draws, random_state=0)
                seconds = (time.perf_counter() - began) / args.draws
                record = {"setting": f"{start_name}, train {train}"
                                     + (", lab-shift augmentation" if args.labshift
                                        else "")
                                     + (", TTA" if args.tta else ""),
                          "crop": crop,
                          "k": args.k, "draws": args.draws,
                          "max_epochs": clf.max_epochs, "lr": clf.lr,
                          "accuracy_mean": scores.accuracy_mean,
                          "accuracy_std": scores.accuracy_std,
                          "balanced_accuracy_mean": scores.balanced_accuracy_mean,
                          "balanced_accuracy_std": scores.balanced_accuracy_std,
                          "seconds_per_draw": round(seconds, 1),
                          "n_train": scores.n_train.tolist()}
                records.append(record)
                print(json.dumps(record))
    with open(args.log, "a") as f:
        for record in records:
            f.write(json.dumps(dict(record, model=args.model, lab=args.lab_dir,
                                    device=pick_device()[1])) + "\n")
    if table:
        write_records(Path(args.record), table,
                      title="The shipped models and their recipes")


if __name__ == "__main__":
    main()
