"""Search for a from-scratch PBC recipe that fits 30 minutes on 2 CPU cores (issue 12).

Each call trains one setting on the duplicate-aware stratified 80/20 split of
a PBC folder (the split of ``cpu_proxy_experiment.py``), scores the 20 % with
and without test-time augmentation, and appends one JSON line (setting, fit
time, accuracy, macro-F1, device) to ``--log``: every run is recorded,
failures included.

    python benchmarks/cpu_recipe_search.py ../shared/data/PBC_dataset_normal_DIB \
        --width 0.25 --pool-size 1 --epochs 20 --log runs.jsonl
    python benchmarks/cpu_recipe_search.py DATA --protocol leukosk2026

With ``--protocol`` the classifier is exactly that recipe of
:mod:`leukosk.protocols` (only ``--epochs`` is passed on, if given).

With ``--record PATH --record-id ID --record-model TEXT`` the test-side
scores also go to the provenance table's results file PATH (records ``ID``
and ``ID-tta``), as the V1 and V2 recipes' records
(``v1-recipe-pbc-test``, ``v2-recipe-pbc-test``) were measured.
"""

import argparse
import math
import time
import sys

import numpy as np
import torch
from _common import (add_record_options, load_folder, logged_run, make_record,
                     pick_device, resolve_machine, script_command, write_records)
from _records import recorded_argv

from leukosk.datasets import load_pbc
from skorch.callbacks import LRScheduler
from sklearn.metrics import accuracy_score, f1_score
from sklearn.utils.class_weight import compute_class_weight

from leukosk import RandomReflectRotate, VGG19LeukocyteClassifier
from leukosk.model_selection import stratified_group_split


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_dir")
    p.add_argument("--name", default="")
    p.add_argument("--protocol", default=None, help="a recipe of leukosk.protocols")
    p.add_argument("--log", default="cpu_recipe_runs.jsonl")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--load-size", type=int, default=None,
                   help="decode at this size (default: image size / crop)")
    p.add_argument("--crop", type=float, default=1.0)
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--pool-size", type=int, default=1)
    p.add_argument("--hidden-units", type=int, default=256)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--no-batch-norm", dest="batch_norm", action="store_false")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--optimizer", choices=["adamw", "sgd"], default="adamw")
    p.add_argument("--max-lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--pct-start", type=float, default=0.25)
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--class-weight", choices=["none", "balanced"], default="none")
    p.add_argument("--ema", type=float, default=0.0,
                   help="EMA decay of the weights per batch (0: none)")
    p.add_argument("--labshift", action="store_true",
                   help="add the lab-shift augmenters (scale, colour, stain, blur, JPEG)")
    p.add_argument("--scale", type=float, nargs=2, default=(0.45, 1.1),
                   help="RandomScaleCrop's range with --labshift")
    p.add_argument("--hue", type=float, default=0.08, help="RandomColorJitter's hue")
    p.add_argument("--saturation", type=float, default=0.3,
                   help="RandomColorJitter's saturation")
    p.add_argument("--stain-scale", type=float, default=0.2,
                   help="RandomStainJitter's scale")
    p.add_argument("--init", default=None,
                   help="start from a saved model (weights=) instead of random weights")
    p.add_argument("--lr", type=float, default=None,
                   help="the protocol's peak learning rate, if not its own")
    p.add_argument("--standardize", action="store_true",
                   help="per-image colour standardisation (module__standardize)")
    p.add_argument("--other-lab", default=None,
                   help="a labelled folder of another lab to score out of the box")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--no-tta", dest="tta", action="store_false")
    p.add_argument("--save", default=None,
                   help="save the fitted model here, and beside it (.npz) the test "
                        "split's indices, labels and probabilities")
    p.add_argument("--verbose", type=int, default=1)
    add_record_options(p)
    p.add_argument("--record-id", default=None, help="the record's id (with --record)")
    p.add_argument("--record-model", default=None,
                   help="the model or recipe as the record names it (with --record)")
    args = p.parse_args(argv)
    if args.record and not (args.record_id and args.record_model):
        p.error("--record needs --record-id and --record-model")
    return args


def table_records(result, args, machine, argv):
    """The provenance-table records of a run's ``result``: the 80/20 test
    side, without and with TTA."""
    command = script_command(__file__, *recorded_argv(argv))
    return [make_record(args.record_id + ("-tta" if key == "tta" else ""),
                        model=args.record_model, data=args.record_data,
                        split="80/20, test part", n=result["n_test"], tta=key == "tta",
                        machine=machine, accuracy=result[key]["accuracy"],
                        macro_f1=result[key]["macro_f1"], source=command)
            for key in ("plain", "tta") if key in result]


def labshift_augmentations(args):
    """leukosk.protocols.lab_shift_augmentations, with this run's settings."""
    from leukosk.protocols import lab_shift_augmentations

    return lab_shift_augmentations(random_state=0).set_params(
        scale__scale=tuple(args.scale), colour__hue=args.hue,
        colour__saturation=args.saturation, stain__scale=args.stain_scale)


def make_classifier(args, y_train):
    if args.protocol:
        from leukosk.protocols import PROTOCOLS

        extra = {} if args.epochs is None else {"max_epochs": args.epochs}
        if args.labshift:
            extra["augment"] = labshift_augmentations(args)
        if args.standardize:
            extra["module__standardize"] = True
        if args.init:
            extra["weights"] = args.init
        if args.lr:
            extra["lr"] = args.lr
        return PROTOCOLS[args.protocol](random_state=0, verbose=args.verbose,
                                        **extra).estimator
    args.epochs = args.epochs or 20
    steps = args.epochs * math.ceil(len(y_train) / args.batch_size)
    if args.optimizer == "adamw":
        options = dict(optimizer=torch.optim.AdamW,
                       optimizer__weight_decay=args.weight_decay)
    else:
        options = dict(optimizer=torch.optim.SGD, optimizer__momentum=0.9,
                       optimizer__nesterov=True,
                       optimizer__weight_decay=args.weight_decay)
    criterion = dict(criterion__label_smoothing=args.label_smoothing)
    if args.class_weight == "balanced":
        classes = np.unique(y_train)
        criterion["criterion__weight"] = torch.tensor(
            compute_class_weight("balanced", classes=classes, y=y_train),
            dtype=torch.float32)
    callbacks = [("one_cycle", LRScheduler(
        policy=torch.optim.lr_scheduler.OneCycleLR, max_lr=args.max_lr,
        total_steps=steps, pct_start=args.pct_start, step_every="batch"))]
    if args.ema:
        from leukosk.callbacks import WeightAveraging
        callbacks.append(("ema", WeightAveraging(decay=args.ema)))
    return VGG19LeukocyteClassifier(
        weights=None, batch_norm=args.batch_norm, image_size=args.image_size,
        module__hidden_units=args.hidden_units, module__dropout=args.dropout,
        module__width=args.width, module__pool_size=args.pool_size,
        module__crop=args.crop,
        batch_size=args.batch_size, max_epochs=args.epochs, lr=args.max_lr,
        head_lr_multiplier=1.0, **options, **criterion,
        augment=RandomReflectRotate(random_state=0), random_state=0,
        verbose=args.verbose, callbacks=callbacks)


def run(args):
    if args.protocol:
        settings = make_classifier(args, None).network_settings()
        args.image_size = settings["image_size"]
        args.crop = settings["module"].get("crop", 1.0)
    load_size = args.load_size or round(args.image_size / args.crop)
    data = load_folder(args.data_dir, load_size)
    train, test = stratified_group_split(data.target, groups=data.groups,
                                         test_size=0.2, random_state=0)
    if args.limit:
        train = np.random.default_rng(0).permutation(train)[: args.limit]
    clf = make_classifier(args, data.target[train])
    shown = ("max_epochs", "batch_size", "lr", "image_size", "batch_norm", "optimizer",
             "optimizer__weight_decay", "criterion__label_smoothing", "class_weight")
    params = clf.get_params(deep=False)
    estimator = {k: str(params[k]) for k in shown if k in params}
    estimator.update({k: v for k, v in params.items() if k.startswith("module__")})
    estimator["callbacks"] = str(params.get("callbacks"))
    start = time.perf_counter()
    clf.fit(data.images[train], data.target[train])
    result = {"fit_min": round((time.perf_counter() - start) / 60, 2),
              "estimator": estimator,
              "n_train": len(train), "n_test": len(test),
              "train_loss": [round(v, 3) for v in clf.history_[:, "train_loss"]]}
    outputs = {}
    for tta in (False, True)[: 1 + args.tta]:
        start = time.perf_counter()
        proba = clf.set_params(tta=tta).predict_proba(data.images[test])
        pred = clf.classes_[proba.argmax(axis=1)]
        key = "tta" if tta else "plain"
        outputs[f"proba_{key}"] = proba
        result[key] = {
            "accuracy": round(accuracy_score(data.target[test], pred), 4),
            "macro_f1": round(f1_score(data.target[test], pred, average="macro"), 4),
            "predict_s": round(time.perf_counter() - start, 1)}
    if args.other_lab:
        from leukosk.model_selection import score_present_classes

        other = load_pbc(args.other_lab, image_size=None, verbose=False, cache=False)
        for tta in (False, True)[: 1 + args.tta]:
            scores = score_present_classes(clf.set_params(tta=tta), other.images,
                                           other.target)
            result[f"other_lab_{'tta' if tta else 'plain'}"] = {
                "accuracy": round(scores.accuracy, 4),
                "balanced_accuracy": round(scores.balanced_accuracy, 4),
                "n": len(other.target)}
    if args.save:
        clf.set_params(tta=False).save(args.save)
        np.savez(str(args.save) + ".npz", test=test, train=train, classes=clf.classes_,
                 y_test=data.target[test], filenames=data.filenames[test], **outputs)
    return result


def main(argv=None):
    args = parse(argv)
    machine = resolve_machine(args.machine) if args.record else None
    record = {"name": args.name, "setting": {k: v for k, v in vars(args).items()
                                             if k not in ("data_dir", "log", "name", "verbose")},
              "device": pick_device()[1], "started": time.strftime("%Y-%m-%d %H:%M")}
    logged_run(args.log, record, lambda: run(args), key="result", reraise=True)
    if args.record:
        argv = sys.argv[1:] if argv is None else list(argv)
        write_records(args.record, table_records(record["result"], args, machine, argv),
                      title="The shipped models and their recipes")


if __name__ == "__main__":
    main()
