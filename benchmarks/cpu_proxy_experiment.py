"""CPU-scale proxy of the paper's pipeline on a PBC folder (issue 5's experiment).

Duplicate-aware stratified 80/20 split of the folder, 64 px, from scratch
(``weights=None``: ImageNet weights are not available everywhere), VGG-19 or
VGG-19 with batch norm (narrow hidden layers without dropout: from scratch,
dropout 0.5 on 256 units slowed learning several-fold), AdamW with a
one-cycle learning-rate schedule, random reflection + rotation on every batch,
bfloat16 autocast and channels-last where the CPU supports them; accuracy and
macro-F1 on the 20 %, with and without test-time augmentation. A from-scratch
CPU proxy, not the paper's setting.

    python benchmarks/cpu_proxy_experiment.py ../shared/data/PBC_dataset_normal_DIB
    python benchmarks/cpu_proxy_experiment.py DATA --no-batch-norm

The scores also go, as records of the provenance table, to ``--record``
(default ``docs/results/paper_recipe_from_scratch.json``; ``--record ''``:
none), ids ``cpu-proxy-vgg19bn`` or ``cpu-proxy-vgg19`` (and ``-tta``).
"""

import argparse
import math
import time

import numpy as np
import torch
import sys

from _common import (add_record_options, load_folder, make_record, pick_device,
                     resolve_machine, script_command, write_records)
from _records import RESULTS_DIR, recorded_argv
from skorch.callbacks import LRScheduler
from sklearn.metrics import accuracy_score, f1_score

from leukosk import RandomReflectRotate, VGG19LeukocyteClassifier
from leukosk.model_selection import stratified_group_split

OPTIMIZERS = {
    "adamw": (torch.optim.AdamW, {"optimizer__weight_decay": 0.05}),
    "sgd": (torch.optim.SGD, {"optimizer__momentum": 0.9,
                              "optimizer__weight_decay": 5e-4}),
}


def make_classifier(args, n_train):
    steps = args.epochs * math.ceil(n_train / args.batch_size)
    optimizer, options = OPTIMIZERS[args.optimizer]
    return VGG19LeukocyteClassifier(
        weights=None, batch_norm=args.batch_norm,
        module__hidden_units=args.hidden_units, module__dropout=args.dropout,
        image_size=args.image_size,
        batch_size=args.batch_size, max_epochs=args.epochs, lr=args.max_lr,
        head_lr_multiplier=1.0, optimizer=optimizer, **options,
        augment=RandomReflectRotate(random_state=0), amp=args.amp,
        channels_last=args.amp, random_state=0, verbose=args.verbose,
        callbacks=[("one_cycle", LRScheduler(
            policy=torch.optim.lr_scheduler.OneCycleLR, max_lr=args.max_lr,
            total_steps=steps, step_every="batch"))])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adamw")
    parser.add_argument("--max-lr", type=float, default=6e-4)
    parser.add_argument("--hidden-units", type=int, default=256)
    parser.add_argument("--dropout", type=float, default=0.0,
                        help="dropout of the two hidden layers")
    parser.add_argument("--no-batch-norm", dest="batch_norm", action="store_false")
    parser.add_argument("--no-amp", dest="amp", action="store_false",
                        help="float32 (default: bfloat16 autocast + channels_last)")
    parser.add_argument("--limit", type=int, default=None,
                        help="use only this many training images (smoke runs)")
    parser.add_argument("--no-tta", dest="tta", action="store_false",
                        help="skip the (8x slower) evaluation with TTA")
    parser.add_argument("--verbose", type=int, default=1)
    add_record_options(parser, default=str(RESULTS_DIR / "paper_recipe_from_scratch.json"))
    args = parser.parse_args(argv)
    machine = resolve_machine(args.machine) if args.record else None
    table = []
    data = load_folder(args.data_dir, args.image_size)
    train, test = stratified_group_split(data.target, groups=data.groups,
                                         test_size=0.2, random_state=0)
    if args.limit:
        train = np.random.default_rng(0).permutation(train)[: args.limit]
    clf = make_classifier(args, len(train))
    start = time.perf_counter()
    clf.fit(data.images[train], data.target[train])
    fit_s = time.perf_counter() - start
    print(f"device: {pick_device()[1]}")
    print(f"{'vgg19_bn' if args.batch_norm else 'vgg19'} (hidden {args.hidden_units}, "
          f"dropout {args.dropout:g}), "
          f"from scratch; {args.optimizer} one-cycle max lr {args.max_lr:g}, batch "
          f"{args.batch_size}; {'bf16 autocast + channels_last' if args.amp else 'fp32'}")
    print(f"train {len(train)} / test {len(test)} images, {args.image_size}px, "
          f"{args.epochs} epochs, fit {fit_s / 60:.1f} min; train loss by epoch "
          f"{[round(v, 3) for v in clf.history_[:, 'train_loss']]}")
    for tta in (False, True)[: 1 + args.tta]:
        start = time.perf_counter()
        pred = clf.set_params(tta=tta).predict(data.images[test])
        accuracy = accuracy_score(data.target[test], pred)
        macro_f1 = f1_score(data.target[test], pred, average="macro")
        print(f"tta={tta!s:5}: accuracy {accuracy:.4f}, macro-F1 {macro_f1:.4f} "
              f"(predict {time.perf_counter() - start:.0f} s)")
        if args.record and not args.limit:  # a smoke run is no result
            name = "VGG-19-BN" if args.batch_norm else "VGG-19"
            table.append(make_record(
                f"cpu-proxy-{name.lower().replace('-', '')}" + ("-tta" if tta else ""),
                model=f"CPU proxy, {name}, from scratch ({args.image_size} px, "
                      f"{args.epochs} epochs)",
                data=args.record_data, split="80/20, test part", n=len(test), tta=tta,
                machine=machine, accuracy=accuracy, macro_f1=macro_f1,
                source=script_command(__file__, *recorded_argv(
                    sys.argv[1:] if argv is None else list(argv)))))
    if table:
        write_records(args.record, table,
                      title="The paper's pipeline from random weights (not the paper's "
                            "setting)")


if __name__ == "__main__":
    main()
