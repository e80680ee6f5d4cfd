"""The parsers of the ``leukosk`` command: what each command takes.

The options several commands share (``--device``, ``--out``, ``--quiet``,
``--tta``, the model argument, ...) are declared once, in :data:`SHARED`, and
added by name (:func:`add_options`); each command adds its own beside them.
docs/_generate.py builds the command-line reference from these parsers.
"""

import argparse
import math

from . import _commands as commands

__all__ = ["build_parser", "EXTRAS"]

#: The optional dependencies each command needs: (extra, modules). Checked
#: before any work, so that a missing one is a one-line error naming the
#: install rather than a failure after training.
EXTRAS = {
    "demo": ("plot", ("matplotlib",)),
    "train": ("plot", ("matplotlib",)),
    "evaluate": ("plot", ("matplotlib",)),
    "explain": ("plot", ("matplotlib",)),
    "count": ("plot", ("matplotlib",)),
    "reproduce": ("plot", ("matplotlib",)),
    "predict": (None, ()),
    "adapt": (None, ()),
}


def _weights(value):
    return None if value.lower() in ("none", "scratch") else value


def _positive_int(value):
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return number


def _learning_rate(value):
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value}") from None
    if not math.isfinite(number) or number < 0:
        raise argparse.ArgumentTypeError(
            f"must be a finite, non-negative number, got {value}")
    return number


def _level(value):
    """A confidence level from the command line: a number in (0, 1)."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not 0 < number < 1:  # NaN fails too
        raise argparse.ArgumentTypeError(
            f"must be a number between 0 and 1 (exclusive), got {value}")
    return number


#: The arguments several commands take: name -> (flags, keywords). A command
#: adds them with :func:`add_options`, changing a keyword where it differs
#: (a default, a metavar).
SHARED = {
    "model": (("model",), dict(
        metavar="MODEL", help="a model folder or .safetensors file, or 'default' "
                              "(the model shipped with leukosk)")),
    "data_dir": (("data_dir",), dict(metavar="DATA_DIR")),
    "inputs": (("inputs",), dict(nargs="+", metavar="IMAGE_OR_DIR")),
    "out": (("--out",), dict(required=True, metavar="DIR")),
    "report": (("--report",), dict(required=True, metavar="REPORT_DIR")),
    "tta": (("--tta",), dict(action="store_true",
                             help="average over the 8 square symmetries")),
    "device": (("--device",), dict(help="auto (default), cpu, cuda or cuda:N")),
    "epochs": (("--epochs",), dict(type=_positive_int, help="training epochs (10)")),
    "seed": (("--seed",), dict(type=int, help="random seed")),
    "no_cache": (("--no-cache",), dict(action="store_true",
                                       help="decode the images afresh; keep no data cache")),
    "quiet": (("--quiet",), dict(action="store_true", help="no progress output")),
}


def add_options(parser, *names, **changes):
    """Add the shared arguments ``names`` (keys of :data:`SHARED`) to ``parser``.

    ``changes`` maps a name to the keywords that differ for this command,
    e.g. ``out={"metavar": "MODEL_DIR"}``.
    """
    for name in names:
        flags, keywords = SHARED[name]
        parser.add_argument(*flags, **dict(keywords, **changes.get(name, {})))


def _add_training_options(parser, *, paper_defaults):
    defaults = "the paper's" if paper_defaults else "the classifier's"
    group = parser.add_argument_group(f"training (defaults: {defaults})")
    group.add_argument("--weights", type=_weights, default=argparse.SUPPRESS,
                       help="IMAGENET1K_V1 (default), a .pth/.safetensors state "
                            "dict, or 'none' to train from scratch")
    group.add_argument("--image-size", type=_positive_int, help="side in px (224)")
    add_options(group, "epochs")
    group.add_argument("--batch-size", type=_positive_int, help="mini-batch (10); reproduce "
                       "scales the learning rate with it")
    group.add_argument("--lr", type=_learning_rate, help="learning rate (1e-4)")
    group.add_argument("--batch-norm", action="store_true",
                       help="VGG-19 with batch normalisation")
    group.add_argument("--hidden-units", type=_positive_int,
                       help="width of the hidden FC layers (4096)")
    group.add_argument("--width", type=float,
                       help="channel multiplier of the convolutions (1.0)")
    add_options(group, "device")
    group.add_argument("--amp", action="store_true",
                       help="bfloat16 mixed precision (fast on recent GPUs/CPUs)")
    group.add_argument("--channels-last", action="store_true",
                       help="channels-last memory layout (use with --amp)")
    add_options(group, "seed")
    group.add_argument("--checkpoint", metavar="DIR",
                       help="write a checkpoint to DIR after every epoch")
    group.add_argument("--resume", action="store_true",
                       help="continue from the checkpoint in --checkpoint DIR")
    add_options(group, "no_cache", "quiet")


def _needs(command):
    """The ``--help`` line stating what ``command`` needs beyond leukosk."""
    extra, modules = EXTRAS[command]
    if extra is None:
        return "Needs nothing beyond 'pip install leukosk'."
    return (f"Needs the [{extra}] extra ({', '.join(modules)}): "
            f"pip install \"leukosk[{extra}]\".")


def _command(commands_action, name, run, **keywords):
    parser = commands_action.add_parser(name, epilog=_needs(name), **keywords)
    parser.set_defaults(func=run)
    return parser


def _add_demo(sub):
    demo = _command(
        sub, "demo", commands.demo,
        help="the shipped model on the bundled PBC sample, a review page, "
             "and the model adapted to a review",
        description="Classify the 160 bundled PBC images with the model shipped in "
                    "leukosk (seconds; they were kept out of its training) and print "
                    "its accuracy and confusion matrix. Then count 80 of them as one "
                    "sample and write its review page (open it in a browser), adapt "
                    "the shipped model to the corrections of a review of the other "
                    "80 (their true classes stand in for a technologist's; about 28 s "
                    "of fine-tuning with its held-back check on 2 CPU cores, the whole "
                    "demo about 40 s), and score it on the 80 of the page.")
    add_options(demo, "out", "epochs", "seed", "device", "quiet",
                out={"required": False, "default": "leukosk-demo", "metavar": None,
                     "help": "output folder (default: %(default)s)"},
                epochs={"default": 10, "help": "fine-tuning epochs (default: %(default)s)"},
                seed={"default": 0, "help": "random seed (default: %(default)s)"},
                device={"default": "auto",
                        "help": "auto, cpu, cuda or cuda:N (default: %(default)s)"},
                quiet={"help": "no per-epoch log"})


def _add_train(sub):
    from ..protocols import PROTOCOLS

    train = _command(
        sub, "train", commands.train,
        help="train on a PBC-layout folder and save the model",
        description="Train VGG19LeukocyteClassifier on every image of DATA_DIR "
                    "(one subfolder per class), with the paper's augmentation, "
                    "and save MODEL_DIR/model.safetensors and training curves.")
    add_options(train, "data_dir", "out", out={"metavar": "MODEL_DIR"})
    train.add_argument("--no-augment", action="store_true",
                       help="no random reflection/rotation")
    train.add_argument("--protocol", default="none", choices=["none", *sorted(PROTOCOLS)],
                       help="a named recipe of leukosk.protocols (its settings; the "
                            "options below override them), e.g. leukosk2026")
    _add_training_options(train, paper_defaults=False)


def _add_evaluate(sub):
    evaluate = _command(
        sub, "evaluate", commands.evaluate,
        help="score a saved model on a labelled folder",
        description="Predict every image of DATA_DIR with the model in "
                    "MODEL_DIR and write a report (JSON, Markdown, figures).")
    add_options(evaluate, "model", "data_dir", "report", "tta", "device", "no_cache")
    evaluate.add_argument("--no-trust", action="store_true",
                          help="skip calibration, conformal sets and top losses")
    evaluate.add_argument("--calibration-fraction", type=_level, default=0.5,
                          help="share of the images that fit the temperature and the "
                               "conformal sets (default: %(default)s)")
    add_options(evaluate, "quiet")


def _add_predict(sub):
    predict = _command(
        sub, "predict", commands.predict,
        help="classify images, print class and probabilities",
        description="Classify image files (or all images under folders) with "
                    "the model shipped with leukosk, or with --model MODEL "
                    "(a first argument that names a model also names it, as in "
                    "'leukosk predict default IMAGES...' or 'leukosk predict "
                    "MODEL_DIR IMAGES...').")
    add_options(predict, "inputs")
    predict.add_argument("--model", help="a model folder or .safetensors file "
                                         "(default: the shipped model)")
    predict.add_argument("--format", choices=("csv", "json"), default="csv",
                         help="output format (default: %(default)s)")
    predict.add_argument("--output", help="file to write (default: stdout)")
    predict.add_argument("--fields", action="store_true",
                         help="the images are microscope fields: find every white cell "
                              "in each and classify it from its own crop (one row per "
                              "cell: path, x0, y0, x1, y1 in the field's pixels, class, "
                              "probabilities); fields without one are listed on stderr")
    add_options(predict, "tta", "device")


def _add_explain(sub):
    explain = _command(
        sub, "explain", commands.explain,
        help="Grad-CAM: what the model looked at, one overlay per image",
        description="Write, for each image, the image with the Grad-CAM map of its "
                    "predicted class (or --target) laid over it.")
    add_options(explain, "model", "inputs", "out")
    explain.add_argument("--target", help="explain this class instead of the prediction")
    add_options(explain, "device")


def _add_count(sub):
    count = _command(
        sub, "count", commands.count,
        help="the differential count of one sample's cells",
        description="Classify every cell image of FOLDER (one sample), and write the "
                    "count and percentage of each class with Wilson confidence "
                    "intervals, the cells referred to an expert, a bar chart, and a "
                    "review page to correct the cells in a browser (count.csv, "
                    "count.json, referred.csv, count.png, index.html).")
    add_options(count, "model", model={"metavar": "MODEL_OR_DEFAULT"})
    count.add_argument("folder", metavar="FOLDER")
    add_options(count, "out")
    count.add_argument("--fields", action="store_true",
                       help="the images are microscope fields: find every white cell "
                            "in each, count them all, and show each cell in its field "
                            "on the review page; fields without one are listed")
    count.add_argument("--confidence", type=_level, default=0.95,
                       help="confidence of the intervals (default: %(default)s)")
    count.add_argument("--coverage", type=_level, default=0.95,
                       help="confidence of the conformal sets (default: %(default)s)")
    count.add_argument("--calibration", metavar="LABELLED_DIR",
                       help="labelled images (class subfolders) to make conformal sets "
                            "for a model that has none stored")
    add_options(count, "device", "quiet")


def _add_adapt(sub):
    adapt = _command(
        sub, "adapt", commands.adapt,
        help="fine-tune a model on the corrections of a review page",
        description="Fine-tune MODEL_OR_DEFAULT with the few-shot recipe on the cells "
                    "of CORRECTIONS.csv (downloaded from the review page that "
                    "'leukosk count' writes), and on any LABELLED_DIR (one subfolder "
                    "per class); write MODEL_DIR/model.safetensors and "
                    "model_card.json. 'leukosk count MODEL_DIR FOLDER' then uses it. "
                    "The fine-tuning is first tried with a third of the cells held "
                    "back in turn; where it would not get more of them right than "
                    "MODEL_OR_DEFAULT, the starting model is written unchanged, and "
                    "the card and the last line say so.")
    add_options(adapt, "model", model={"metavar": "MODEL_OR_DEFAULT"})
    adapt.add_argument("corrections", metavar="CORRECTIONS.csv")
    adapt.add_argument("folders", nargs="*", metavar="LABELLED_DIR")
    add_options(adapt, "out", out={"metavar": "MODEL_DIR"})
    adapt.add_argument("--images", metavar="FOLDER",
                       help="the counted folder, where the cells of CORRECTIONS.csv "
                            "are (default: beside it, or the current directory)")
    adapt.add_argument("--train", choices=("all", "head"),
                       help="fine-tune every layer (default) or the head only")
    adapt.add_argument("--no-check", dest="check", action="store_false",
                       help="adapt without holding cells back to check that it helps "
                            "(3 fine-tunings fewer)")
    add_options(adapt, "epochs", "seed", "device", "quiet",
                epochs={"help": "epochs (default: 30)"},
                seed={"default": 0, "help": "random seed (default: %(default)s)"})


def _add_reproduce(sub):
    reproduce = _command(
        sub, "reproduce", commands.reproduce,
        help="the paper's protocol end to end",
        description="Jarjees et al. (2022) on DATA_DIR: balanced 70/30 split "
                    "keeping duplicates together, ImageNet VGG-19 fine-tuned "
                    "with reflection and rotation, report with Fig. 5/6-style "
                    "figures next to the paper's numbers.")
    add_options(reproduce, "data_dir", "report", "tta",
                tta={"help": "also average over the 8 square symmetries"})
    _add_training_options(reproduce, paper_defaults=True)


def build_parser():
    """The argument parser of the ``leukosk`` command.

    Examples
    --------
    >>> from leukosk.cli import build_parser
    >>> args = build_parser().parse_args(["predict", "cell.jpg", "--device", "cpu"])
    >>> args.command, args.inputs, args.device, args.model
    ('predict', ['cell.jpg'], 'cpu', None)
    """
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="leukosk",
        description="Leukocyte image classification (VGG-19 transfer "
                    "learning, scikit-learn API).")
    parser.add_argument("--version", action="version",
                        version=f"leukosk {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_demo, _add_train, _add_evaluate, _add_predict, _add_explain,
                _add_count, _add_adapt, _add_reproduce):
        add(sub)
    return parser
