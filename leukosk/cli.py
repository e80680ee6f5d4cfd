"""The ``leukosk`` command line (thin: it parses arguments and calls the library).

Commands: ``demo``, ``train``, ``evaluate``, ``predict``, ``reproduce``. Bad
arguments or data end with a one-line reason on stderr and a non-zero exit
status (2 for usage errors, 1 for everything else).
"""

import argparse
import csv
import json
import sys
import warnings
from pathlib import Path

__all__ = ["main", "build_parser"]

MODEL_FILE = "model.safetensors"
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}


def _weights(value):
    return None if value.lower() in ("none", "scratch") else value


def _positive_int(value):
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return number


def _classifier_overrides(args):
    """Classifier parameters given on the command line; the rest keep defaults."""
    options = {
        "image_size": args.image_size, "max_epochs": args.epochs,
        "device": args.device, "batch_size": args.batch_size, "lr": args.lr,
        "batch_norm": args.batch_norm or None,
        "module__hidden_units": args.hidden_units, "random_state": args.seed,
        "amp": args.amp or None, "channels_last": args.channels_last or None,
    }
    overrides = {k: v for k, v in options.items() if v is not None}
    if "weights" in vars(args):  # given, possibly as 'none'
        overrides["weights"] = args.weights
    overrides["verbose"] = 0 if args.quiet else 1
    return overrides


def _add_training_options(parser, *, paper_defaults):
    defaults = "the paper's" if paper_defaults else "the classifier's"
    group = parser.add_argument_group(f"training (defaults: {defaults})")
    group.add_argument("--weights", type=_weights, default=argparse.SUPPRESS,
                       help="IMAGENET1K_V1 (default), a .pth/.safetensors state "
                            "dict, or 'none' to train from scratch")
    group.add_argument("--image-size", type=_positive_int, help="side in px (224)")
    group.add_argument("--epochs", type=_positive_int, help="training epochs (10)")
    group.add_argument("--batch-size", type=_positive_int, help="mini-batch (10); reproduce scales "
                       "the learning rate with it")
    group.add_argument("--lr", type=float, help="learning rate (1e-4)")
    group.add_argument("--batch-norm", action="store_true",
                       help="VGG-19 with batch normalisation")
    group.add_argument("--hidden-units", type=_positive_int,
                       help="width of the hidden FC layers (4096)")
    group.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    group.add_argument("--amp", action="store_true",
                       help="bfloat16 mixed precision (fast on recent GPUs/CPUs)")
    group.add_argument("--channels-last", action="store_true",
                       help="channels-last memory layout (use with --amp)")
    group.add_argument("--seed", type=int, help="random seed")
    group.add_argument("--quiet", action="store_true", help="no progress output")


def _load_folder(path, quiet):
    from .datasets import load_pbc

    data = load_pbc(path, verbose=not quiet)
    if len(data.target) == 0:
        raise ValueError(f"no readable images in {path}")
    return data


def _train(args):
    from ._augment import RandomReflectRotate
    from ._classifier import VGG19LeukocyteClassifier

    data = _load_folder(args.data_dir, args.quiet)
    params = _classifier_overrides(args)
    if not args.no_augment:
        params["augment"] = RandomReflectRotate(random_state=args.seed)
    clf = VGG19LeukocyteClassifier(**params).fit(data.images, data.target)
    out = Path(args.out)
    clf.save(out / MODEL_FILE)
    _curves(clf, out)
    print(f"trained on {len(data.target)} images of {len(clf.classes_)} classes; "
          f"model: {out / MODEL_FILE}")
    return 0


def _curves(clf, folder):
    from .reports import plot_training_curves
    from .reports._report import save_figure

    return save_figure(plot_training_curves(clf.history_),
                       Path(folder) / "training_curves")


def _load_model(model_dir, device, tta=False):
    from ._classifier import VGG19LeukocyteClassifier

    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {MODEL_FILE} in {model_dir}; train one with "
                                "'leukosk train DATA_DIR --out MODEL_DIR'")
    overrides = {"verbose": 0, "tta": tta}
    if device:
        overrides["device"] = device
    return VGG19LeukocyteClassifier.load(path, **overrides)


def _evaluate(args):
    from .reports import write_report

    clf = _load_model(args.model_dir, args.device, args.tta)
    data = _load_folder(args.data_dir, args.quiet)
    paths = write_report(args.report, data.target, clf.predict(data.images),
                         history=clf.history_, labels=clf.classes_,
                         title=f"Evaluation of {args.model_dir} on {args.data_dir}")
    summary = json.loads(paths["json"].read_text())
    print(f"accuracy {summary['accuracy']:.3f}, macro-F1 {summary['macro_f1']:.3f} "
          f"on {summary['n_images']} images; report: {paths['markdown']}")
    return 0


def _expand(inputs):
    files = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix.lower() in
                            _IMAGE_SUFFIXES and not p.name.startswith("."))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"no such image or folder: {item}")
    if not files:
        raise ValueError("no image files found in the given paths")
    return [str(f) for f in files]


def _predict(args):
    clf = _load_model(args.model_dir, args.device, args.tta)
    files = _expand(args.inputs)
    proba = clf.predict_proba(files)
    labels = clf.classes_[proba.argmax(axis=1)]
    classes = [str(c) for c in clf.classes_]
    out = open(args.output, "w", newline="") if args.output else sys.stdout
    try:
        if args.format == "json":
            json.dump([{"path": f, "class": str(label),
                        "probabilities": dict(zip(classes, map(float, p)))}
                       for f, label, p in zip(files, labels, proba)], out, indent=2)
            out.write("\n")
        else:
            writer = csv.writer(out)
            writer.writerow(["path", "class"] + classes)
            for f, label, p in zip(files, labels, proba):
                writer.writerow([f, label] + [f"{v:.6f}" for v in p])
    finally:
        if args.output:
            out.close()
    return 0


def _reproduce(args):
    from .protocols import jarjees2022
    from .reports import write_report

    data = _load_folder(args.data_dir, args.quiet)
    params = _classifier_overrides(args)
    recipe = jarjees2022(**params)
    train, test = recipe.split(data.target, groups=data.groups)
    clf = recipe.estimator.fit(data.images[train], data.target[train])
    report = Path(args.report)
    clf.save(report / MODEL_FILE)
    clf.set_params(tta=args.tta)
    paths = write_report(report, data.target[test], clf.predict(data.images[test]),
                         history=clf.history_, labels=clf.classes_,
                         title="Reproduction of Jarjees et al. (2022)")
    summary = json.loads(paths["json"].read_text())
    print(f"paper protocol: trained on {len(train)}, tested on {len(test)} images; "
          f"accuracy {summary['accuracy']:.3f} (paper: 0.981), macro-F1 "
          f"{summary['macro_f1']:.3f}; report: {paths['markdown']}")
    return 0


def _demo(args):
    from ._demo import format_demo_report, run_demo

    result = run_demo(args.out, image_size=args.image_size,
                      max_epochs=args.epochs, random_state=args.seed,
                      device=args.device, verbose=0 if args.quiet else 1)
    print(format_demo_report(result))
    return 0


def _add_demo(commands):
    demo = commands.add_parser(
        "demo", help="train a small model on the bundled PBC sample",
        description="Train a small VGG-19-BN from scratch on the 160 bundled PBC "
                    "images (about a minute on 2 CPU cores), print the test "
                    "accuracy and write a confusion-matrix PNG.")
    demo.add_argument("--out", default="leukosk-demo",
                      help="output folder (default: %(default)s)")
    demo.add_argument("--epochs", type=_positive_int, default=20,
                      help="training epochs (default: %(default)s)")
    demo.add_argument("--image-size", type=int, default=32,
                      help="image side in pixels (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0,
                      help="random seed (default: %(default)s)")
    demo.add_argument("--device", default="auto",
                      help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    demo.add_argument("--quiet", action="store_true",
                      help="no per-epoch log or progress bar")
    demo.set_defaults(func=_demo)


def _add_model_commands(commands):
    train = commands.add_parser(
        "train", help="train on a PBC-layout folder and save the model",
        description="Train VGG19LeukocyteClassifier on every image of DATA_DIR "
                    "(one subfolder per class), with the paper's augmentation, "
                    "and save MODEL_DIR/model.safetensors and training curves.")
    train.add_argument("data_dir", metavar="DATA_DIR")
    train.add_argument("--out", required=True, metavar="MODEL_DIR")
    train.add_argument("--no-augment", action="store_true",
                       help="no random reflection/rotation")
    _add_training_options(train, paper_defaults=False)
    train.set_defaults(func=_train)

    evaluate = commands.add_parser(
        "evaluate", help="score a saved model on a labelled folder",
        description="Predict every image of DATA_DIR with the model in "
                    "MODEL_DIR and write a report (JSON, Markdown, figures).")
    evaluate.add_argument("model_dir", metavar="MODEL_DIR")
    evaluate.add_argument("data_dir", metavar="DATA_DIR")
    evaluate.add_argument("--report", required=True, metavar="REPORT_DIR")
    evaluate.add_argument("--tta", action="store_true",
                          help="average over the 8 square symmetries")
    evaluate.add_argument("--device")
    evaluate.add_argument("--quiet", action="store_true")
    evaluate.set_defaults(func=_evaluate)

    predict = commands.add_parser(
        "predict", help="classify images, print class and probabilities",
        description="Classify image files (or all images under folders).")
    predict.add_argument("model_dir", metavar="MODEL_DIR")
    predict.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")
    predict.add_argument("--format", choices=("csv", "json"), default="csv")
    predict.add_argument("--output", help="file to write (default: stdout)")
    predict.add_argument("--tta", action="store_true")
    predict.add_argument("--device")
    predict.set_defaults(func=_predict)

    reproduce = commands.add_parser(
        "reproduce", help="the paper's protocol end to end",
        description="Jarjees et al. (2022) on DATA_DIR: balanced 70/30 split "
                    "keeping duplicates together, ImageNet VGG-19 fine-tuned "
                    "with reflection and rotation, report with Fig. 5/6-style "
                    "figures next to the paper's numbers.")
    reproduce.add_argument("data_dir", metavar="DATA_DIR")
    reproduce.add_argument("--report", required=True, metavar="REPORT_DIR")
    reproduce.add_argument("--tta", action="store_true",
                           help="also average over the 8 square symmetries")
    _add_training_options(reproduce, paper_defaults=True)
    reproduce.set_defaults(func=_reproduce)


def build_parser():
    """The argument parser of the ``leukosk`` command."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="leukosk",
        description="Leukocyte image classification (VGG-19 transfer "
                    "learning, scikit-learn API).")
    parser.add_argument("--version", action="version",
                        version=f"leukosk {__version__}")
    commands = parser.add_subparsers(dest="command", required=True,
                                     metavar="COMMAND")
    _add_demo(commands)
    _add_model_commands(commands)
    return parser


def _format_warning(message, category, *args, **kwargs):
    """Warnings as one plain line: a terminal user needs no source location."""
    return f"leukosk: warning: {message}\n"


def main(argv=None):
    """Entry point of the ``leukosk`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    original_format = warnings.formatwarning
    warnings.formatwarning = _format_warning  # restored below
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, ImportError, RuntimeError) as exc:
        reason = " ".join(line.strip() for line in str(exc).splitlines()) \
            or type(exc).__name__
        print(f"leukosk {args.command}: error: {reason}", file=sys.stderr)
        return 1
    finally:
        warnings.formatwarning = original_format
