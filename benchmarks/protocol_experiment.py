"""The paper's protocol on a PBC folder: accuracy and the paper's figures.

Splits the folder with :func:`~leukosk.model_selection.paper_split` (classes
balanced, 70/30), trains :func:`~leukosk.protocols.jarjees2022` (ImageNet
weights if they are in the torch hub cache, else from scratch, which is said
in the output), for plain VGG-19 and VGG-19 with batch norm, and reports
accuracy and macro-F1 on the test part with and without test-time
augmentation. The batch-norm model's report (Fig. 5 and Fig. 6 style
figures, JSON, Markdown) is written to --report.

    python benchmarks/protocol_experiment.py DATA_DIR --report REPORT_DIR --amp --channels-last
"""

import argparse
import time

from _common import load_folder, pick_device, precision_name
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
    args = parser.parse_args(argv)
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
            print(f"  tta={tta!s:5}: accuracy {accuracy_score(data.target[test], pred):.4f}"
                  f", macro-F1 {f1_score(data.target[test], pred, average='macro'):.4f}")
        if batch_norm and args.report:
            write_report(args.report, data.target[test], pred, history=clf.history_,
                         labels=clf.classes_,
                         title=f"jarjees2022 protocol, {name}, tta, "
                               f"{'ImageNet' if pretrained else 'from scratch'}")


if __name__ == "__main__":
    main()
