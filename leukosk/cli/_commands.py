"""The ``leukosk`` commands: each checks where it writes, calls the library,
and prints what it did.

What a user could want from Python is a library function that a command
calls (:func:`leukosk.load_model`, :func:`leukosk.datasets.list_images`,
:func:`leukosk.count.write_count_files`,
:func:`leukosk.explain.write_grad_cam_overlays`,
:func:`leukosk.uncertainty.stored_conformal_sets`, ...); what stays here is
the command line's own: which messages go to stdout and stderr, and the
checks of output folders made before any work. Each command takes the
parsed arguments and returns the exit status; errors are raised, and
:func:`leukosk.cli.main` turns them into one line and an exit status.
"""

import contextlib
import csv
import json
import sys
import warnings
from pathlib import Path

from ..utils._output import check_output_file, check_output_folder, printable

__all__ = ["Interrupted", "demo", "train", "evaluate", "predict", "explain", "count",
           "adapt", "reproduce"]

#: Where ``train`` and ``reproduce`` save the model in their output folder
#: (the model folder that :func:`leukosk.load_model` reads).
MODEL_FILE = "model.safetensors"

#: What a ``count`` output folder holds: a later run may replace these.
COUNT_FILES = {"count.csv", "count.json", "referred.csv", "count.png", "count.svg",
               "index.html", "cells", "fields"}


class Interrupted(Exception):
    """Training was interrupted; the message says what was kept."""


@contextlib.contextmanager
def _stop_if_interrupted():
    """Inside: a fit that Ctrl-C ended early raises :class:`Interrupted`
    (the partial model is not saved) instead of warning."""
    from .. import FitInterruptedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", FitInterruptedWarning)
        try:
            yield
        except FitInterruptedWarning as exc:
            raise Interrupted(f"{exc} The model was not saved.") from None


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


def _labelled(path, quiet, cache=True):
    from ..datasets import load_pbc

    data = load_pbc(path, verbose=not quiet, cache=cache)
    if len(data.target) == 0:
        raise ValueError(f"no readable images in {path}")
    return data


def _model(model, device, tta=False):
    """The fitted classifier ``model`` names, and the line that names it
    (printed on stderr)."""
    from .. import LeukoskWeights, load_model, resolve_model

    source = resolve_model(model)
    clf = load_model(source, tta=tta, **({"device": device} if device else {}))
    if isinstance(source, LeukoskWeights):
        used = (f"model: {source.name}, shipped with leukosk (trained on "
                f"{source.meta['data']['summary']}; see the model card)")
    else:
        used = f"model: {source}"
    print(printable(used), file=sys.stderr)
    return clf, used


def _where(inputs):
    """How a warning names the images of ``inputs``."""
    return (f"the images in {printable(inputs[0])}"
            if len(inputs) == 1 and Path(inputs[0]).is_dir() else "these images")


def _save_curves(clf, folder):
    from ..reports import plot_training_curves, save_figure

    return save_figure(plot_training_curves(clf.history_), Path(folder) / "training_curves")


def train(args):
    out = check_output_folder(args.out, [args.data_dir])
    data = _labelled(args.data_dir, args.quiet, cache=not args.no_cache)
    params = _classifier_overrides(args)
    if args.protocol != "none":
        from ..protocols import PROTOCOLS

        clf = PROTOCOLS[args.protocol](**params).estimator
    else:
        from .. import RandomReflectRotate, VGG19LeukocyteClassifier

        if not args.no_augment:
            params["augment"] = RandomReflectRotate(random_state=args.seed)
        clf = VGG19LeukocyteClassifier(**params)
    with _stop_if_interrupted():
        clf.fit(data.images, data.target)
    clf.save(out / MODEL_FILE)
    _save_curves(clf, out)
    print(f"trained on {len(data.target)} images of {len(clf.classes_)} classes; "
          f"model: {out / MODEL_FILE}")
    return 0


def evaluate(args):
    from ..reports import trust_report, write_report

    check_output_folder(args.report, [args.data_dir], "--report")
    clf, _ = _model(args.model, args.device, args.tta)
    data = _labelled(args.data_dir, args.quiet, cache=not args.no_cache)
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
                         title=f"Evaluation of {args.model} on {args.data_dir}")
    summary = json.loads(paths["json"].read_text())
    line = (f"accuracy {summary['accuracy']:.3f}, macro-F1 {summary['macro_f1']:.3f} "
            f"on {summary['n_images']} images")
    if isinstance(trust, tuple):
        line += (f"; ECE {100 * summary['trust']['ece_before']:.1f} % "
                 f"({100 * summary['trust']['ece_after']:.1f} % temperature-scaled)")
    print(f"{line}; report: {paths['markdown']}")
    return 0


def _is_model(item):
    """Whether ``item`` names a model, as the first argument of ``count``,
    ``explain`` and ``adapt`` does: a model folder, a ``.safetensors`` file,
    ``default`` or a shipped model's name (so that ``leukosk predict MODEL
    IMAGES...`` names the model). A shipped model's name that is also a file
    or folder here is ambiguous: refused."""
    from .. import LeukoskWeights, resolve_model

    path = Path(item)
    shipped = item == "default" or item in LeukoskWeights.__members__
    if shipped and (path.exists() or path.is_symlink()):
        raise ValueError(f"{printable(item)!r} names both a shipped model and a file "
                         f"or folder here: write --model {printable(item)} IMAGES... "
                         f"for the model, ./{printable(item)} for the images.")
    if shipped or path.is_file():
        return shipped or path.suffix == ".safetensors"
    try:
        return path.is_dir() and isinstance(resolve_model(path), Path)
    except FileNotFoundError:
        return False


def predict(args):
    import numpy as np

    from ..datasets import list_images
    from ..domain import watch_lab_shift

    inputs, model = list(args.inputs), args.model
    if model is None and len(inputs) > 1 and _is_model(inputs[0]):
        model = inputs.pop(0)  # leukosk predict MODEL IMAGES..., as count takes it
    if args.output:
        check_output_file(args.output, inputs + ([model] if model else []))
    files = list_images(inputs)
    clf, _ = _model(model, args.device, args.tta)
    boxes = None
    if args.fields:
        cells = _field_cells(files, clf.decode_size_)
        files, boxes, images = [files[i] for i in cells.field], cells.boxes, cells.crops
    else:
        images = files
    with watch_lab_shift(clf, len(images), where=_where(inputs)):
        proba = clf.predict_proba(images) if len(images) else \
            np.empty((0, len(clf.classes_)))
    labels = clf.classes_[proba.argmax(axis=1)]
    if not args.output:
        _write_predictions(sys.stdout, args.format, files, labels, clf.classes_, proba,
                           boxes)
        return 0
    from ..utils._files import atomic_path

    with atomic_path(args.output) as tmp, open(tmp, "w", newline="",
                                               encoding="utf-8") as out:
        _write_predictions(out, args.format, files, labels, clf.classes_, proba, boxes)
    return 0


def _field_cells(files, size):
    """The white cells of the fields ``files`` (:func:`leukosk.fields.field_cells`);
    fields without one are listed on stderr."""
    from ..fields import field_cells

    cells = field_cells(files, size)
    if len(cells.empty):
        names = ", ".join(printable(files[i]) for i in cells.empty[:5])
        print(f"note: no white cell found in {len(cells.empty)} of {len(files)} fields "
              f"({names}{' ...' if len(cells.empty) > 5 else ''})", file=sys.stderr)
    return cells


def _counted_fields(files, names, size):
    """The white cells of the fields ``files`` for ``count --fields``: their
    crops, each named by its field and box (``field.jpg#x0,y0,x1,y1``, the
    name the page and ``corrections.csv`` use), and the fields without one
    (noted on stderr)."""
    from sklearn.utils import Bunch

    from ..fields import cell_name

    cells = _field_cells(files, size)
    return Bunch(crops=cells.crops, paths=files, field=cells.field, boxes=cells.boxes,
                 names=[cell_name(names[k], box) for k, box in zip(cells.field, cells.boxes)],
                 field_names=[names[k] for k in cells.field],
                 empty_names=[names[k] for k in cells.empty], n_fields=len(files))


def _write_predictions(out, format, files, labels, classes, proba, boxes=None):
    """``predict``'s table: CSV (``path``, with ``--fields`` the cell's box
    ``x0, y0, x1, y1``, ``class``, then one column of probabilities per class)
    or JSON, text escaped for a spreadsheet."""
    from ..utils._output import csv_cell, encode_name

    classes = [str(c) for c in classes]
    corners = ["x0", "y0", "x1", "y1"] if boxes is not None else []
    rows = [[round(float(v)) for v in box] for box in boxes] if boxes is not None \
        else [[] for _ in files]
    if format == "json":
        json.dump([{"path": encode_name(f), **dict(zip(corners, box)),
                    "class": encode_name(label),
                    "probabilities": dict(zip(map(encode_name, classes), map(float, p)))}
                   for f, box, label, p in zip(files, rows, labels, proba)], out, indent=2)
        out.write("\n")
        return
    writer = csv.writer(out)
    writer.writerow(["path", *corners, "class"] + [csv_cell(c) for c in classes])
    for f, box, label, p in zip(files, rows, labels, proba):
        writer.writerow([csv_cell(f), *box, csv_cell(str(label))]
                        + [f"{v:.6f}" for v in p])


def _target_label(clf, target):
    """The class ``--target`` names (as text: ``1`` names the integer class 1)."""
    if target is None:
        return None
    for label in clf.classes_.tolist():
        if str(label) == target:
            return label
    raise ValueError(f"--target {printable(target)!r} is not a class of the model; "
                     f"its classes are {printable([str(c) for c in clf.classes_])}.")


def explain(args):
    from ..datasets import list_images
    from ..explain import write_grad_cam_overlays

    out = check_output_folder(args.out, args.inputs)
    files = list_images(args.inputs)
    clf, _ = _model(args.model, args.device)
    written = write_grad_cam_overlays(clf, files, out, _target_label(clf, args.target))
    print(f"{len(written.overlays)} Grad-CAM overlay(s) in {printable(out)} "
          "(listed in overlays.csv)")
    return 0


def _conformal_sets(clf, args):
    """The sets that refer cells: MAPIE's on ``--calibration DIR``, or those
    stored with the model; None (with a note) without either."""
    from ..uncertainty import conformalize, stored_conformal_sets

    if args.calibration:
        data = _labelled(args.calibration, args.quiet)
        return conformalize(clf, data.images, data.target, confidence_level=args.coverage)
    sets = stored_conformal_sets(args.model)
    if sets is None:
        print("note: no cells are referred: pass --calibration LABELLED_DIR to make "
              "conformal sets for this model.", file=sys.stderr)
    return sets


def count(args):
    from ..count import differential_count, write_count_files
    from ..datasets import list_images
    from ..domain import watch_lab_shift
    from ..fields import cell_name
    from ..reports import plot_differential_count, save_figure
    from ..review import display_names, write_review_page
    from ..utils._output import replaced_folder

    out = check_output_folder(args.out, [args.folder])
    folder = Path(args.folder)
    title = f"leukosk review: {folder.resolve().name}"  # written escaped
    files = list_images([args.folder])
    clf, used = _model(args.model, args.device)
    sets = _conformal_sets(clf, args)
    root = folder if folder.is_dir() else folder.parent
    # the count's files name cells by their paths as given, the page relative to root
    images, names, shown, fields = files, files, display_names(files, root), None
    if args.fields:
        fields = _counted_fields(files, shown, clf.decode_size_)
        images, shown = fields.crops, fields.names
        names = [cell_name(files[k], box) for k, box in zip(fields.field, fields.boxes)]
    with watch_lab_shift(clf, len(images), where=_where([args.folder])) as shift:
        result = differential_count(clf, images, names=names, confidence=args.confidence,
                                    sets=sets, coverage=args.coverage)
    with replaced_folder(out, owned=COUNT_FILES.__contains__) as new:
        write_count_files(new, result, model=used, lab_shift=shift, fields=fields)
        save_figure(plot_differential_count(result), new / "count")
        page = write_review_page(new, result, images, clf=clf, names=shown, title=title,
                                 lab_shift=shift, fields=fields)
    for row in result.table:
        print(f"{printable(row['class']):>13} {row['count']:5d} {row['percent']:6.1f} % "
              f"[{row['ci_low']:5.1f}, {row['ci_high']:5.1f}]")
    print(f"{result.n_cells} cells; {len(result.referred)} referred to an expert; "
          f"files in {printable(out)}; review page: {printable(out / page.name)}")
    return 0


def _model_file(model):
    """The file ``model`` names, or None for a shipped model."""
    from .. import resolve_model

    source = resolve_model(model)
    return source if isinstance(source, Path) else None


def adapt(args):
    from ..corrections import adapt_to_corrections, write_adapted_model

    inputs = [args.corrections, *(args.folders or []), args.images,
              _model_file(args.model)]  # never overwrite the model adapted
    out = check_output_folder(args.out, [item for item in inputs if item is not None])
    params = {k: v for k, v in {"max_epochs": args.epochs, "train": args.train,
                                "device": args.device}.items() if v is not None}
    with _stop_if_interrupted():
        clf = adapt_to_corrections(args.model, args.corrections, folders=args.folders,
                                   images=args.images, check=args.check,
                                   random_state=args.seed,
                                   verbose=0 if args.quiet else 1, **params)
    model = write_adapted_model(clf, out)
    card = clf.card_
    print(f"adapted {card['adapted_from']} on {card['n_cells']} cells "
          f"({card['n_corrected']} corrected, {card['n_confirmed']} confirmed, "
          f"{card['n_from_folders']} from folders); model: {model}; count with it: "
          f"leukosk count {out} FOLDER --out DIR")
    print(card["decision"])
    return 0


def reproduce(args):
    from ..protocols import jarjees2022
    from ..reports import write_report

    report = check_output_folder(args.report, [args.data_dir], "--report")
    data = _labelled(args.data_dir, args.quiet, cache=not args.no_cache)
    recipe = jarjees2022(**_classifier_overrides(args))
    train_index, test = recipe.split(data.target, groups=data.groups)
    clf = recipe.estimator
    with _stop_if_interrupted():
        clf.fit(data.images[train_index], data.target[train_index])
    clf.save(report / MODEL_FILE)
    clf.set_params(tta=args.tta)
    paths = write_report(report, data.target[test], clf.predict(data.images[test]),
                         history=clf.history_, labels=clf.classes_,
                         title="Reproduction of Jarjees et al. (2022)")
    summary = json.loads(paths["json"].read_text())
    print(f"paper protocol: trained on {len(train_index)}, tested on {len(test)} images; "
          f"accuracy {summary['accuracy']:.3f} (paper: 0.981), macro-F1 "
          f"{summary['macro_f1']:.3f}; report: {paths['markdown']}")
    return 0


def demo(args):
    from . import _demo

    print(_demo.format_shipped_report(_demo.run_shipped_demo(args.out, device=args.device)))
    print()
    result = _demo.run_review_demo(args.out, max_epochs=args.epochs,
                                   random_state=args.seed, device=args.device,
                                   verbose=0 if args.quiet else 1)
    print(_demo.format_review_report(result))
    return 0
