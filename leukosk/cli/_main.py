"""The ``leukosk`` command line (thin: it parses arguments and calls the library).

Commands: ``demo``, ``train``, ``evaluate``, ``predict``, ``explain``,
``count``, ``adapt``, ``reproduce``. Bad
arguments or data end with a one-line reason on stderr and a non-zero exit
status: 2 for usage errors, 130 when interrupted (Ctrl-C), 1 for everything
else. No command replaces a good result with a partial one.
"""

import argparse
import contextlib
import csv
import json
import math
import os
import signal
import sys
import warnings
from pathlib import Path

from ..utils._output import output_path, printable

__all__ = ["main", "build_parser"]

MODEL_FILE = "model.safetensors"

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
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}


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
    from ..count import check_level

    try:
        return check_level(value, "level")
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a number between 0 and 1 (exclusive), got {value}") from None


class Interrupted(Exception):
    """Training was interrupted; the message says what was kept."""


def _check_out_dir(path, inputs=(), option="--out"):
    """``--out``/``--report`` must be a writable folder (or not exist yet),
    outside the inputs: checked before any work, so that hours of training
    are not lost at the end (see :func:`leukosk.utils._output.check_output_folder`)."""
    from ..utils._output import check_output_folder

    return check_output_folder(path, inputs, option)


def _classifier_overrides(args):
    """Classifier parameters given on the command line; the rest keep defaults."""
    options = {
        "checkpoint_dir": getattr(args, "checkpoint", None),
        "resume": getattr(args, "resume", False) or None,
        "image_size": args.image_size, "max_epochs": args.epochs,
        "device": args.device, "batch_size": args.batch_size, "lr": args.lr,
        "batch_norm": args.batch_norm or None,
        "module__hidden_units": args.hidden_units, "module__width": args.width,
        "random_state": args.seed,
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
    group.add_argument("--lr", type=_learning_rate, help="learning rate (1e-4)")
    group.add_argument("--batch-norm", action="store_true",
                       help="VGG-19 with batch normalisation")
    group.add_argument("--hidden-units", type=_positive_int,
                       help="width of the hidden FC layers (4096)")
    group.add_argument("--width", type=float,
                       help="channel multiplier of the convolutions (1.0)")
    group.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    group.add_argument("--amp", action="store_true",
                       help="bfloat16 mixed precision (fast on recent GPUs/CPUs)")
    group.add_argument("--channels-last", action="store_true",
                       help="channels-last memory layout (use with --amp)")
    group.add_argument("--seed", type=int, help="random seed")
    group.add_argument("--checkpoint", metavar="DIR",
                       help="write a checkpoint to DIR after every epoch")
    group.add_argument("--resume", action="store_true",
                       help="continue from the checkpoint in --checkpoint DIR")
    group.add_argument("--no-cache", action="store_true",
                       help="decode the images afresh; keep no data cache")
    group.add_argument("--quiet", action="store_true", help="no progress output")


def _load_folder(path, quiet, cache=True):
    from ..datasets import load_pbc

    data = load_pbc(path, verbose=not quiet, cache=cache)
    if len(data.target) == 0:
        raise ValueError(f"no readable images in {path}")
    return data


def _fitted(clf, X, y):
    """``clf.fit(X, y)``; an interruption raises :class:`Interrupted`."""
    with _interruption_reported():
        clf.fit(X, y)
    return _not_interrupted(clf)


@contextlib.contextmanager
def _interruption_reported():
    """Inside: an interrupted fit warns nothing (:func:`_not_interrupted` says it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _interrupted_warning())
        yield


def _not_interrupted(clf):
    from ..classifier._training import interruption_message

    if clf.interrupted_:
        raise Interrupted(interruption_message(clf) + " The model was not saved.")
    return clf


def _interrupted_warning():
    from ..classifier._training import FitInterruptedWarning

    return FitInterruptedWarning


def _train(args):
    out = _check_out_dir(args.out, [args.data_dir])
    data = _load_folder(args.data_dir, args.quiet, cache=not args.no_cache)
    params = _classifier_overrides(args)
    if args.protocol != "none":
        from ..protocols import PROTOCOLS

        recipe = PROTOCOLS[args.protocol](**params)
        clf = recipe.estimator
    else:
        from ..augmentation._augment import RandomReflectRotate
        from ..classifier._classifier import VGG19LeukocyteClassifier

        if not args.no_augment:
            params["augment"] = RandomReflectRotate(random_state=args.seed)
        clf = VGG19LeukocyteClassifier(**params)
    _fitted(clf, data.images, data.target)
    clf.save(out / MODEL_FILE)
    _curves(clf, out)
    print(f"trained on {len(data.target)} images of {len(clf.classes_)} classes; "
          f"model: {out / MODEL_FILE}")
    return 0


def _curves(clf, folder):
    from ..reports import plot_training_curves
    from ..reports._report import save_figure

    return save_figure(plot_training_curves(clf.history_),
                       Path(folder) / "training_curves")


def _model_path(model):
    """The model file a MODEL argument names (a folder or a .safetensors file)."""
    path = Path(model)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {MODEL_FILE} in {model}; train one with "
                                "'leukosk train DATA_DIR --out MODEL_DIR', or "
                                "use the shipped model (--model default)")
    return path


def _is_model(item):
    path = Path(item)
    return (path.is_dir() and (path / MODEL_FILE).is_file()) or (
        path.is_file() and path.suffix == ".safetensors")


def _load_model(model, device, tta=False):
    """A fitted classifier, and a line naming it: ``model`` is a model folder
    or file, or ``"default"`` (or a shipped model's name) for a shipped one."""
    from ..classifier._classifier import VGG19LeukocyteClassifier
    from ..weights._shipped import LeukoskWeights
    from ..classifier._pretrained import load_pretrained

    overrides = {"verbose": 0, "tta": tta}
    if device:
        overrides["device"] = device
    default = model in (None, "default")
    shipped = _weights_named(model)
    if isinstance(shipped, LeukoskWeights):
        shipped = LeukoskWeights[shipped.name]  # DEFAULT names its alias target
        clf = load_pretrained(shipped, **overrides)
        return clf, (f"model: {shipped.name}, shipped with leukosk (trained on "
                     f"{shipped.meta['data']['summary']}; see the model card)")
    if default:
        raise FileNotFoundError("this leukosk ships no trained model; name one "
                                "with --model MODEL_DIR")
    path = _model_path(model)
    return VGG19LeukocyteClassifier.load(path, **overrides), f"model: {path}"


def _weights_named(model):
    """The trained weights a MODEL argument names ("default" for the shipped
    model), or None for a model folder."""
    from ..weights._shipped import resolve_leukosk_weights

    return resolve_leukosk_weights("DEFAULT" if model in (None, "default") else model)


def _evaluate(args):
    from ..reports import trust_report, write_report

    _check_out_dir(args.report, [args.data_dir], "--report")
    clf, used = _load_model(args.model_dir, args.device, args.tta)
    print(printable(used), file=sys.stderr)
    data = _load_folder(args.data_dir, args.quiet, cache=not args.no_cache)
    trust = None
    if not args.no_trust:
        try:
            trust = trust_report(clf, data.images, data.target,
                                 calibration_fraction=args.calibration_fraction)
        except ValueError as exc:
            print(f"note: no calibration or conformal section: {exc}.", file=sys.stderr)
            trust = f"{exc}."  # the report says why, too
    paths = write_report(args.report, data.target, clf.predict(data.images),
                         history=clf.history_, labels=clf.classes_, trust=trust,
                         title=f"Evaluation of {args.model_dir} on {args.data_dir}")
    summary = json.loads(paths["json"].read_text())
    line = (f"accuracy {summary['accuracy']:.3f}, macro-F1 {summary['macro_f1']:.3f} "
            f"on {summary['n_images']} images")
    if isinstance(trust, tuple):
        line += (f"; ECE {100 * summary['trust']['ece_before']:.1f} % "
                 f"({100 * summary['trust']['ece_after']:.1f} % temperature-scaled)")
    print(f"{line}; report: {paths['markdown']}")
    return 0


def _explain(args):
    from ..explain import grad_cam
    from ..utils._images import image_arrays
    from ..utils._output import replaced_folder
    from ..reports._trust import overlay

    out = _check_out_dir(args.out, args.inputs)
    files = _image_files(args.inputs)
    clf, used = _load_model(args.model, args.device)
    print(printable(used), file=sys.stderr)
    maps, labels = grad_cam(clf, files, target=_target_label(clf, args.target))
    from PIL import Image

    names = _overlay_names(files, labels)
    with replaced_folder(out, owned=_is_overlay) as new:
        for name, image, cam in zip(names, image_arrays(files), maps):
            Image.fromarray(overlay(image, cam)).save(output_path(new, name), format="PNG")
        _write_csv(new / "overlays.csv", ["image", "overlay", "class"],
                   zip(files, names, map(str, labels)))
    print(f"{len(names)} Grad-CAM overlay(s) in {printable(out)} (listed in overlays.csv)")
    return 0


def _is_overlay(name):
    return name == "overlays.csv" or (name.endswith(".png") and "_gradcam_" in name)


def _target_label(clf, target):
    """The class ``--target`` names (as text: ``1`` names the integer class 1)."""
    if target is None:
        return None
    for label in clf.classes_.tolist():
        if str(label) == target:
            return label
    raise ValueError(f"--target {printable(target)!r} is not a class of the model; "
                     f"its classes are {printable([str(c) for c in clf.classes_])}.")


def _overlay_names(files, labels):
    """One file name per image: its stem, or (for stems that repeat, as in
    a/cell1.jpg and b/cell1.png) its path below the inputs' common folder;
    sanitised, unique, with the explained class."""
    from collections import Counter

    from ..utils._output import safe_name

    stems = [safe_name(Path(f).stem) for f in files]
    repeated = {stem for stem, n in Counter(stems).items() if n > 1}
    root = os.path.commonpath([os.path.dirname(os.path.abspath(f)) for f in files])
    names, taken = [], set()
    for path, stem, label in zip(files, stems, labels):
        base = safe_name(os.path.relpath(os.path.abspath(path), root)) \
            if stem in repeated else stem
        name, n = f"{base}_gradcam_{safe_name(label)}.png", 1
        while name.lower() in taken:  # case-insensitive file systems too
            n += 1
            name = f"{base}-{n}_gradcam_{safe_name(label)}.png"
        taken.add(name.lower())
        names.append(name)
    return names


def _write_csv(path, header, rows):
    """A CSV file, written atomically, every cell escaped (:func:`csv_cell`)."""
    from ..utils._output import csv_cell
    from ..utils._files import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows([csv_cell(cell) if isinstance(cell, str) else cell
                          for cell in row] for row in rows)


def _conformal_sets(clf, model, args):
    """The sets that refer cells: stored with a shipped model, or MAPIE's on
    ``--calibration DIR``; None (with a note) without either."""
    from ..uncertainty import ConformalSets, conformalize

    if args.calibration:
        data = _load_folder(args.calibration, args.quiet)
        return conformalize(clf, data.images, data.target, confidence_level=args.coverage)
    shipped = _weights_named(model)
    if shipped is not None and "conformal" in shipped.meta:
        return ConformalSets(shipped.meta["conformal"]["thresholds"])
    print("note: no cells are referred: pass --calibration LABELLED_DIR to make "
          "conformal sets for this model.", file=sys.stderr)
    return None


_COUNT_FILES = {"count.csv", "count.json", "referred.csv", "count.png", "count.svg",
                "index.html", "cells"}


def _count(args):
    from ..count import differential_count
    from ..utils._output import replaced_folder
    from ..domain import watch_lab_shift
    from ..reports import plot_differential_count
    from ..reports._report import save_figure

    out = _check_out_dir(args.out, [args.folder])
    files = _image_files([args.folder])
    clf, used = _load_model(args.model, args.device)
    print(printable(used), file=sys.stderr)
    sets = _conformal_sets(clf, args.model, args)
    with watch_lab_shift(clf, len(files), where=_where([args.folder])) as shift:
        count = differential_count(clf, files, names=files, confidence=args.confidence,
                                   sets=sets, coverage=args.coverage)
    with replaced_folder(out, owned=_COUNT_FILES.__contains__) as new:
        _write_count(new, count, used, shift)
        save_figure(plot_differential_count(count), new / "count")
        page = out / _review_page(new, count, files, clf, args.folder).name
    for row in count.table:
        print(f"{printable(row['class']):>13} {row['count']:5d} {row['percent']:6.1f} % "
              f"[{row['ci_low']:5.1f}, {row['ci_high']:5.1f}]")
    print(f"{count.n_cells} cells; {len(count.referred)} referred to an expert; "
          f"files in {printable(out)}; review page: {printable(page)}")
    return 0


def _review_page(out, count, files, clf, folder):
    from ..review._page import display_names, write_review_page

    root = folder if Path(folder).is_dir() else Path(folder).parent
    return write_review_page(out, count, files, clf=clf, names=display_names(files, root),
                             title=f"leukosk review: {Path(folder).resolve().name}")


def _write_count(out, count, used, shift):
    from ..utils._files import atomic_path

    _write_csv(out / "count.csv", ["class", "count", "percent", "ci_low", "ci_high"],
               ([row["class"], row["count"], f"{row['percent']:.2f}",
                 f"{row['ci_low']:.2f}", f"{row['ci_high']:.2f}"] for row in count.table))
    _write_csv(out / "referred.csv", ["file", "predicted", "plausible classes"],
               ([row["name"], row["predicted"], " ".join(row["set"])]
                for row in count.referred))
    document = {"model": _text(used), "n_cells": count.n_cells,
                "confidence": count.confidence, "interval": "Wilson score",
                "table": count.table, "referral": count.referral,
                "referred": [dict(row, name=_text(row["name"])) for row in count.referred],
                "lab_shift": {"score": shift.score, "threshold": shift.threshold,
                              "shifted": shift.shifted}}
    with atomic_path(out / "count.json") as tmp:
        tmp.write_text(json.dumps(document, indent=2, allow_nan=False))


def _adapt(args):
    from ..corrections import adapt_to_corrections, write_adapted_model

    out = _check_out_dir(args.out, [args.corrections, *(args.folders or [])])
    params = {k: v for k, v in {"max_epochs": args.epochs, "train": args.train,
                                "device": args.device}.items() if v is not None}
    with _interruption_reported():
        clf = adapt_to_corrections(args.model, args.corrections, folders=args.folders,
                                   images=args.images, random_state=args.seed,
                                   verbose=0 if args.quiet else 1, **params)
    _not_interrupted(clf)
    model = write_adapted_model(clf, out)
    card = clf.card_
    print(f"adapted {card['adapted_from']} on {card['n_cells']} cells "
          f"({card['n_corrected']} corrected, {card['n_confirmed']} confirmed, "
          f"{card['n_from_folders']} from folders); model: {model}; count with it: "
          f"leukosk count {out} FOLDER --out DIR")
    return 0


def _where(inputs):
    """How a warning names the images of ``inputs``."""
    return (f"the images in {printable(inputs[0])}"
            if len(inputs) == 1 and Path(inputs[0]).is_dir() else "these images")


def _text(name):
    """A file name as valid Unicode (bytes that are not UTF-8 as ``\\xNN``)."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _image_files(inputs):
    """The image files the inputs name (files, or every image under folders).

    Entries that cannot be images (unreadable folders or files, broken links,
    FIFOs, empty, truncated or oversized files) are skipped and listed in one
    :class:`~leukosk.datasets.PBCDataWarning`; hidden files and folders are
    ignored. Missing inputs, or no image at all, are an error.
    """
    files, skipped = [], []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            _walk(path, files, skipped)
        elif os.path.lexists(path):
            _add_image(path, files, skipped)
        else:
            raise FileNotFoundError(f"no such image or folder: {printable(item)}")
    if skipped:
        from ..datasets import PBCDataWarning

        warnings.warn(f"{len(skipped)} entr{'y' if len(skipped) == 1 else 'ies'} "
                      "skipped: " + "; ".join(f"{printable(p)} ({why})"
                                              for p, why in skipped[:5])
                      + (" ..." if len(skipped) > 5 else ""), PBCDataWarning,
                      stacklevel=3)
    if not files:
        raise ValueError("no image files found in the given paths")
    return files


def _walk(folder, files, skipped):
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda entry: entry.name)
    except OSError as exc:
        skipped.append((str(folder), f"unreadable folder: {exc.strerror or exc}"))
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            _walk(entry.path, files, skipped)
        elif Path(entry.name).suffix.lower() in _IMAGE_SUFFIXES:
            _add_image(Path(entry.path), files, skipped)


def _add_image(path, files, skipped):
    from ..utils._images import image_problem

    why = image_problem(path)
    if why:
        skipped.append((str(path), why))
    else:
        files.append(str(path))


def _predict(args):
    inputs, model = list(args.inputs), args.model
    if model is None and len(inputs) > 1 and _is_model(inputs[0]):
        model = inputs.pop(0)  # leukosk predict MODEL_DIR IMAGES... (as before)
    if args.output:
        from ..utils._output import check_output_file

        check_output_file(args.output, inputs + ([model] if model else []))
    from ..domain import watch_lab_shift

    files = _image_files(inputs)
    clf, used = _load_model(model, args.device, args.tta)
    print(printable(used), file=sys.stderr)
    with watch_lab_shift(clf, len(files), where=_where(inputs)):
        proba = clf.predict_proba(files)
    labels = clf.classes_[proba.argmax(axis=1)]
    if not args.output:
        _write_predictions(sys.stdout, args.format, files, labels, clf.classes_, proba)
        return 0
    from ..utils._files import atomic_path

    with atomic_path(args.output) as tmp, open(tmp, "w", newline="",
                                               encoding="utf-8") as out:
        _write_predictions(out, args.format, files, labels, clf.classes_, proba)
    return 0


def _write_predictions(out, format, files, labels, classes, proba):
    from ..utils._output import csv_cell

    classes = [str(c) for c in classes]
    if format == "json":
        json.dump([{"path": _text(f), "class": str(label),
                    "probabilities": dict(zip(classes, map(float, p)))}
                   for f, label, p in zip(files, labels, proba)], out, indent=2)
        out.write("\n")
        return
    writer = csv.writer(out)
    writer.writerow(["path", "class"] + [csv_cell(c) for c in classes])
    for f, label, p in zip(files, labels, proba):
        writer.writerow([csv_cell(f), csv_cell(str(label))] + [f"{v:.6f}" for v in p])


def _reproduce(args):
    from ..protocols import jarjees2022
    from ..reports import write_report

    report = _check_out_dir(args.report, [args.data_dir], "--report")
    data = _load_folder(args.data_dir, args.quiet, cache=not args.no_cache)
    params = _classifier_overrides(args)
    recipe = jarjees2022(**params)
    train, test = recipe.split(data.target, groups=data.groups)
    clf = _fitted(recipe.estimator, data.images[train], data.target[train])
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
    from ._demo import (format_review_report, format_shipped_report, run_review_demo,
                        run_shipped_demo)

    print(format_shipped_report(run_shipped_demo(args.out, device=args.device)))
    print()
    result = run_review_demo(args.out, max_epochs=args.epochs, random_state=args.seed,
                             device=args.device, verbose=0 if args.quiet else 1)
    print(format_review_report(result))
    return 0


def _needs(command):
    """The ``--help`` line stating what ``command`` needs beyond leukosk."""
    extra, modules = EXTRAS[command]
    if extra is None:
        return "Needs nothing beyond 'pip install leukosk'."
    return (f"Needs the [{extra}] extra ({', '.join(modules)}): "
            f"pip install \"leukosk[{extra}]\".")


def check_extras(command):
    """Raise ImportError naming the install if ``command``'s extra is missing.

    Parameters
    ----------
    command : str
        A command of ``leukosk`` (a key of :data:`EXTRAS`).

    Examples
    --------
    >>> from leukosk.cli._main import check_extras
    >>> check_extras("predict")  # needs nothing beyond leukosk itself
    """
    import importlib.util

    extra, modules = EXTRAS.get(command, (None, ()))
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"needs {', '.join(missing)}, which is not installed: "
                          f"pip install \"leukosk[{extra}]\" (or, from a copy of "
                          f"the repository, pip install -e \".[{extra}]\")")


def _add_demo(commands):
    demo = commands.add_parser(
        "demo", help="the shipped model on the bundled PBC sample, a review page, "
                     "and the model adapted to a review",
        description="Classify the 160 bundled PBC images with the model shipped in "
                    "leukosk (seconds; they were kept out of its training) and print "
                    "its accuracy and confusion matrix. Then count 80 of them as one "
                    "sample and write its review page (open it in a browser), adapt "
                    "the shipped model to the corrections of a review of the other "
                    "80 (their true classes stand in for a technologist's; about 20 s "
                    "on 2 CPU cores), and score it on the 80 of the page.",
        epilog=_needs("demo"))
    demo.add_argument("--out", default="leukosk-demo",
                      help="output folder (default: %(default)s)")
    demo.add_argument("--epochs", type=_positive_int, default=10,
                      help="fine-tuning epochs (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0,
                      help="random seed (default: %(default)s)")
    demo.add_argument("--device", default="auto",
                      help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    demo.add_argument("--quiet", action="store_true",
                      help="no per-epoch log")
    demo.set_defaults(func=_demo)


def _add_model_commands(commands):
    train = commands.add_parser(
        "train", help="train on a PBC-layout folder and save the model",
        description="Train VGG19LeukocyteClassifier on every image of DATA_DIR "
                    "(one subfolder per class), with the paper's augmentation, "
                    "and save MODEL_DIR/model.safetensors and training curves.",
        epilog=_needs("train"))
    train.add_argument("data_dir", metavar="DATA_DIR")
    train.add_argument("--out", required=True, metavar="MODEL_DIR")
    train.add_argument("--no-augment", action="store_true",
                       help="no random reflection/rotation")
    train.add_argument("--protocol", default="none", choices=["none", *_protocol_names()],
                       help="a named recipe of leukosk.protocols (its settings; the "
                            "options below override them), e.g. leukosk2026")
    _add_training_options(train, paper_defaults=False)
    train.set_defaults(func=_train)

    evaluate = commands.add_parser(
        "evaluate", help="score a saved model on a labelled folder",
        description="Predict every image of DATA_DIR with the model in "
                    "MODEL_DIR and write a report (JSON, Markdown, figures).",
        epilog=_needs("evaluate"))
    evaluate.add_argument("model_dir", metavar="MODEL",
                          help="a model folder or .safetensors file, or 'default' "
                               "for the model shipped with leukosk")
    evaluate.add_argument("data_dir", metavar="DATA_DIR")
    evaluate.add_argument("--report", required=True, metavar="REPORT_DIR")
    evaluate.add_argument("--tta", action="store_true",
                          help="average over the 8 square symmetries")
    evaluate.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    evaluate.add_argument("--no-cache", action="store_true",
                          help="decode the images afresh; keep no data cache")
    evaluate.add_argument("--no-trust", action="store_true",
                          help="skip calibration, conformal sets and top losses")
    evaluate.add_argument("--calibration-fraction", type=_level, default=0.5,
                          help="share of the images that fit the temperature and the "
                               "conformal sets (default: %(default)s)")
    evaluate.add_argument("--quiet", action="store_true", help="no progress output")
    evaluate.set_defaults(func=_evaluate)

    predict = commands.add_parser(
        "predict", help="classify images, print class and probabilities",
        description="Classify image files (or all images under folders) with "
                    "the model shipped with leukosk, or with --model MODEL "
                    "(a first argument that is a model folder also names it).",
        epilog=_needs("predict"))
    predict.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")
    predict.add_argument("--model", help="a model folder or .safetensors file "
                                         "(default: the shipped model)")
    predict.add_argument("--format", choices=("csv", "json"), default="csv",
                         help="output format (default: %(default)s)")
    predict.add_argument("--output", help="file to write (default: stdout)")
    predict.add_argument("--tta", action="store_true",
                         help="average over the 8 square symmetries")
    predict.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    predict.set_defaults(func=_predict)

    explain = commands.add_parser(
        "explain", help="Grad-CAM: what the model looked at, one overlay per image",
        description="Write, for each image, the image with the Grad-CAM map of its "
                    "predicted class (or --target) laid over it.",
        epilog=_needs("explain"))
    explain.add_argument("model", metavar="MODEL",
                         help="a model folder or file, or 'default' (the shipped model)")
    explain.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR")
    explain.add_argument("--out", required=True, metavar="DIR")
    explain.add_argument("--target", help="explain this class instead of the prediction")
    explain.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    explain.set_defaults(func=_explain)

    count = commands.add_parser(
        "count", help="the differential count of one sample's cells",
        description="Classify every cell image of FOLDER (one sample), and write the "
                    "count and percentage of each class with Wilson confidence "
                    "intervals, the cells referred to an expert, a bar chart, and a "
                    "review page to correct the cells in a browser (count.csv, "
                    "count.json, referred.csv, count.png, index.html).",
        epilog=_needs("count"))
    count.add_argument("model", metavar="MODEL_OR_DEFAULT",
                       help="a model folder or file, or 'default' (the shipped model)")
    count.add_argument("folder", metavar="FOLDER")
    count.add_argument("--out", required=True, metavar="DIR")
    count.add_argument("--confidence", type=_level, default=0.95,
                       help="confidence of the intervals (default: %(default)s)")
    count.add_argument("--coverage", type=_level, default=0.95,
                       help="confidence of the conformal sets (default: %(default)s)")
    count.add_argument("--calibration", metavar="LABELLED_DIR",
                       help="labelled images (class subfolders) to make conformal sets "
                            "for a model that has none stored")
    count.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    count.add_argument("--quiet", action="store_true", help="no progress output")
    count.set_defaults(func=_count)

    _add_adapt(commands)

    reproduce = commands.add_parser(
        "reproduce", help="the paper's protocol end to end",
        description="Jarjees et al. (2022) on DATA_DIR: balanced 70/30 split "
                    "keeping duplicates together, ImageNet VGG-19 fine-tuned "
                    "with reflection and rotation, report with Fig. 5/6-style "
                    "figures next to the paper's numbers.",
        epilog=_needs("reproduce"))
    reproduce.add_argument("data_dir", metavar="DATA_DIR")
    reproduce.add_argument("--report", required=True, metavar="REPORT_DIR")
    reproduce.add_argument("--tta", action="store_true",
                           help="also average over the 8 square symmetries")
    _add_training_options(reproduce, paper_defaults=True)
    reproduce.set_defaults(func=_reproduce)


def _add_adapt(commands):
    adapt = commands.add_parser(
        "adapt", help="fine-tune a model on the corrections of a review page",
        description="Fine-tune MODEL_OR_DEFAULT with the few-shot recipe on the cells "
                    "of CORRECTIONS.csv (downloaded from the review page that "
                    "'leukosk count' writes), and on any LABELLED_DIR (one subfolder "
                    "per class); write MODEL_DIR/model.safetensors and "
                    "model_card.json. 'leukosk count MODEL_DIR FOLDER' then uses it.",
        epilog=_needs("adapt"))
    adapt.add_argument("model", metavar="MODEL_OR_DEFAULT",
                       help="a model folder or file, or 'default' (the shipped model)")
    adapt.add_argument("corrections", metavar="CORRECTIONS.csv")
    adapt.add_argument("folders", nargs="*", metavar="LABELLED_DIR")
    adapt.add_argument("--out", required=True, metavar="MODEL_DIR")
    adapt.add_argument("--images", metavar="FOLDER",
                       help="the counted folder, where the cells of CORRECTIONS.csv "
                            "are (default: beside it, or the current directory)")
    adapt.add_argument("--train", choices=("all", "head"),
                       help="fine-tune every layer (default) or the head only")
    adapt.add_argument("--epochs", type=_positive_int, help="epochs (default: 30)")
    adapt.add_argument("--seed", type=int, default=0)
    adapt.add_argument("--device")
    adapt.add_argument("--quiet", action="store_true", help="no progress output")
    adapt.set_defaults(func=_adapt)


def _protocol_names():
    from ..protocols import PROTOCOLS

    return sorted(PROTOCOLS)


def build_parser():
    """The argument parser of the ``leukosk`` command."""
    from .._version import __version__

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
    return f"leukosk: warning: {printable(str(message))}\n"


def _one_line(exc):
    return printable(" ".join(line.strip() for line in str(exc).splitlines())
                     or type(exc).__name__)


def main(argv=None):
    """Entry point of the ``leukosk`` command; returns the exit status.

    0 on success, 2 for usage errors (from argparse), 130 when interrupted,
    1 for anything else, always with one line on stderr and no traceback
    (set ``LEUKOSK_TRACEBACK=1`` to see one for an unexpected error).
    """
    args = build_parser().parse_args(argv)
    original_format = warnings.formatwarning
    warnings.formatwarning = _format_warning  # restored below
    try:
        check_extras(args.command)
        status = args.func(args)
        sys.stdout.flush()  # here, where a closed pipe is handled below
        return status
    except Interrupted as exc:
        print(f"leukosk {args.command}: interrupted: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"leukosk {args.command}: interrupted; nothing was written.",
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. leukosk predict ... | head -1: the reader is gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except (ValueError, TypeError, OSError, ImportError, RuntimeError,
            MemoryError) as exc:
        print(f"leukosk {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - a bug: one line, traceback on request
        if os.environ.get("LEUKOSK_TRACEBACK"):
            raise
        print(f"leukosk {args.command}: unexpected error ({type(exc).__name__}): "
              f"{_one_line(exc)}. Set LEUKOSK_TRACEBACK=1 to see where, and "
              "please report it.", file=sys.stderr)
        return 1
    finally:
        warnings.formatwarning = original_format
