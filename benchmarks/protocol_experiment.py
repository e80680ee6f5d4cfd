"""The paper's protocol on a PBC folder: accuracy and the paper's figures.

Splits the folder with :func:`~leukosk.model_selection.paper_split` (classes
balanced, 70/30), trains :func:`~leukosk.protocols.jarjees2022` (ImageNet
weights if they are in the torch hub cache, else from scratch, which is said
in the output), for plain VGG-19 and VGG-19 with batch norm, and reports
accuracy and macro-F1 on the test part with and without test-time
augmentation. The batch-norm model's report (Fig. 5 and Fig. 6 style
figures, JSON, Markdown) is written to --report.

    python benchmarks/protocol_experiment.py DATA_DIR --report REPORT_DIR --amp --channels-last

The scores also go, as records of the provenance table, to ``--record``
(default ``docs/results/paper_recipe_from_scratch.json``; ``--record ''``:
none), ids ``paper-vgg19-MACHINE``, ``paper-vgg19bn-MACHINE`` (and ``-tta``).
"""

import argparse
import time

import sys

from _common import (add_record_options, load_folder, make_record, pick_device,
                     precision_name, resolve_machine, script_command, write_records)
from _records import RESULTS_DIR, recorded_argv
from sklearn.metrics import accuracy_score, f1_score

from leukosk.weights._imagenet import resolve_weights, weights_cache_path
from leukosk.protocols import jarjees2022
from leukosk.reports import write_report


def imagenet_weights_cached(batch_norm):
    """Whether torchvision's ImageNet weights are in the torch hub cache."""
    weights = resolve_weights("IMAGENET1K_V1", batch_norm=batch_norm)
    return weights_cache_path(weights).is_file()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir")
    parser.add_argument("--report", default=None)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--channels-last", action="store_true")
    add_record_options(parser, default=str(RESULTS_DIR / "paper_recipe_from_scratch.json"))
    args = parser.parse_args(argv)
    machine = resolve_machine(args.machine) if args.record else None
    command = script_command(__file__, *recorded_argv(
        sys.argv[1:] if argv is None else list(argv)))
    table = []
    data = load_folder(args.data_dir, args.image_size)
    print(f"device: {pick_device()[1]}")
    for batch_norm in (False, True):
        pretrained = imagenet_weights_cached(batch_norm)
        print(f"weights: {'ImageNet' if pretrained else 'none: from scratch, NOT the paper setting'}")
        recipe = jarjees2022(weights="IMAGENET1K_V1" if pretrained else None,
                             batch_size=args.batch_size, random_state=0, verbose=0,
                             batch_norm=batch_norm, amp=args.amp,
                             channels_last=args.channels_last,
                             image_size=args.image_size, max_epochs=args.epochs)
        train, test = recipe.split(data.target, groups=data.groups)
        start = time.perf_counter()
        clf = recipe.estimator.fit(data.images[train], data.target[train])
        fit_s = time.perf_counter() - start
        name = "vgg19_bn" if batch_norm else "vgg19"
        print(f"{name}: train {len(train)} / test {len(test)} images, "
              f"{args.image_size}px, {args.epochs} epochs, batch {args.batch_size}, "
              f"{precision_name(args.amp, args.channels_last)}; fit {fit_s:.1f} s; "
              f"train loss {clf.history_[0, 'train_loss']:.3f} -> "
              f"{clf.history_[-1, 'train_loss']:.3f}")
        for tta in (False, True):
            pred = clf.set_params(tta=tta).predict(data.images[test])
            accuracy = accuracy_score(data.target[test], pred)
            macro_f1 = f1_score(data.target[test], pred, average="macro")
            print(f"  tta={tta!s:5}: accuracy {accuracy:.4f}, macro-F1 {macro_f1:.4f}")
            if args.record:
                table.append(make_record(
                    f"paper-{name.replace('_', '')}-{machine}" + ("-tta" if tta else ""),
                    model=("paper's recipe with VGG-19-BN" if batch_norm
                           else "paper's recipe, VGG-19")
                    + (", ImageNet weights" if pretrained else ", from scratch")
                    + f" ({args.image_size} px, {args.epochs} epochs)",
                    data=args.record_data, split="paper_split 70/30, test part",
                    n=len(test), tta=tta, machine=machine, accuracy=accuracy,
                    macro_f1=macro_f1, source=command))
        if batch_norm and args.report:
            write_report(args.report, data.target[test], pred, history=clf.history_,
                         labels=clf.classes_,
                         title=f"jarjees2022 protocol, {name}, tta, "
                               f"{'ImageNet' if pretrained else 'from scratch'}")
    if table:
        write_records(args.record, table,
                      title="The paper's pipeline from random weights (not the paper's "
                            "setting)")


if __name__ == "__main__":
    main()
