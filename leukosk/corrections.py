"""Corrections teach the model: a technologist's review, turned into a new model.

The review page (:mod:`leukosk.review`) downloads ``corrections.csv``: one
row per reviewed cell, ``file`` (its path relative to the counted folder),
``model_class`` and ``corrected_class`` (equal for a cell the technologist
confirmed). :func:`adapt_to_corrections` fine-tunes the model that made the
count on those cells, plus any labelled folders, with the few-shot recipe
(:func:`leukosk.protocols.few_shot_classifier`); the new model keeps every
class of the old one, and :func:`write_adapted_model` saves it with a card
saying what it was adapted from and on how many cells.
"""

import csv
import json
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.utils import Bunch

from .classifier._pretrained import MODEL_FILE, load_model, resolve_model
from .utils._files import atomic_paths
from .utils._output import csv_text, encode_name, printable

__all__ = ["read_corrections", "adapt_to_corrections", "adapt_checked",
           "write_adapted_model"]

COLUMNS = ("file", "model_class", "corrected_class")
CARD_FILE = "model_card.json"


def _field(value):
    """A field as the page wrote it, read back exactly (:func:`csv_text`):
    without the quote that keeps a spreadsheet from reading it as a formula,
    escapes decoded, spaces kept (a file name may start with one)."""
    return csv_text(value or "")


def _locate(name, roots, csv_path):
    """The image file of the cell ``name``: the one place of the rule that
    corrections stay inside the counted folder. A cell of a field (``leukosk
    count --fields``, named ``field.jpg#x0,y0,x1,y1``) is its field's path
    and box, the field inside the folder as any cell.

    ``name`` is relative to one of ``roots``; a name that resolves outside
    them (an absolute path, ``..``, a symbolic link out) is refused with the
    same words as a missing file, so that the message never tells whether a
    path exists elsewhere on the machine.
    """
    from .fields import cell_name, parse_cell_name

    cell = parse_cell_name(name)  # a cell of a field: field.jpg#x0,y0,x1,y1
    for root in map(Path, roots):
        top = root.resolve()
        path = (top / name).resolve()
        if top in path.parents and path.is_file():
            return str(path)
        field = None if cell is None else (top / cell[0]).resolve()
        if field is not None and top in field.parents and field.is_file():
            return cell_name(str(field), cell[1])
    raise FileNotFoundError(
        f"{printable(csv_path)}: the cell '{encode_name(name)}' is no image file inside "
        f"{' or '.join(printable(r) for r in roots)} (cells are named relative to the "
        "counted folder and may not lie outside it); pass the folder that was counted "
        "(leukosk adapt ... --images FOLDER).")


def _rows(path):
    """The rows of ``path`` with every column of :data:`COLUMNS`, read back
    exactly; any problem of the file as one ``ValueError`` naming it."""
    fix = ("it should be the corrections.csv that the review page downloads "
           f"(columns {', '.join(COLUMNS)}).")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{printable(path)} has no column(s) {missing}: {fix}")
            return [{k: _field(row[k]) for k in COLUMNS} for row in reader]
    except UnicodeDecodeError as exc:
        raise ValueError(f"{printable(path)} is not UTF-8 text ({exc.reason} at byte "
                         f"{exc.start}): {fix}") from None
    except csv.Error as exc:  # a field over csv.field_size_limit(), a NUL...
        raise ValueError(f"{printable(path)} is not a CSV file leukosk reads ({exc}): "
                         f"{fix}") from None


def _one_row_per_cell(rows, files, path):
    """``rows`` and ``files`` with repeated rows of a cell collapsed; a cell
    corrected to two classes is refused (which one is meant is unknown)."""
    classes = {}
    for row, file in zip(rows, files):
        classes.setdefault(file, {}).setdefault(row["corrected_class"], row["file"])
    conflicts = [names for names in classes.values() if len(names) > 1]
    if conflicts:
        shown = ", ".join(f"'{encode_name(next(iter(names.values())))}'"
                          for names in conflicts[:3])
        raise ValueError(f"{printable(path)} corrects {len(conflicts)} cell(s) to more "
                         f"than one class ({shown}{' ...' if len(conflicts) > 3 else ''}"
                         "): keep one row per cell.")
    first = {file: i for i, file in reversed(list(enumerate(files)))}
    keep = sorted(first.values())
    return [rows[i] for i in keep], [files[i] for i in keep]


def read_corrections(path, *, images=None):
    """Read ``corrections.csv`` and find its cells' image files.

    Parameters
    ----------
    path : path-like
        The file the review page downloads.
    images : path-like, default=None
        The folder that was counted; the ``file`` column is relative to it,
        and no cell may lie outside it.
        By default, the folder of ``path``, then the current directory.

    Returns
    -------
    Bunch
        ``files`` (paths), ``target`` (corrected classes), ``model_class``,
        ``n_corrected`` and ``n_confirmed``; one entry per cell (a row
        repeated word for word counts once).

    Raises
    ------
    FileNotFoundError
        A cell is no image file inside the counted folder.
    ValueError
        ``path`` is no corrections.csv (not UTF-8, not CSV, columns
        missing), lists no cells, or corrects a cell to two classes.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> from leukosk.corrections import read_corrections
    >>> with tempfile.TemporaryDirectory() as d:
    ...     Image.new("RGB", (8, 8)).save(f"{d}/a.jpg")
    ...     _ = pathlib.Path(d, "corrections.csv").write_text(
    ...         "file,model_class,corrected_class\\na.jpg,ig,monocyte\\n")
    ...     fixes = read_corrections(pathlib.Path(d, "corrections.csv"))
    ...     fixes.target.tolist(), fixes.n_corrected, fixes.n_confirmed
    (['monocyte'], 1, 0)
    """
    path = Path(path)
    rows = [row for row in _rows(path) if row["file"]]
    if not rows:
        raise ValueError(f"{printable(path)} lists no cells: correct (or confirm) some "
                         "on the review page before downloading it.")
    roots = [images] if images is not None else [path.parent, Path.cwd()]
    rows, files = _one_row_per_cell(
        rows, [_locate(row["file"], roots, path) for row in rows], path)
    model_class = np.array([row["model_class"] for row in rows])
    target = np.array([row["corrected_class"] for row in rows])
    return Bunch(files=np.array(files), target=target, model_class=model_class,
                 n_corrected=int(np.sum(model_class != target)),
                 n_confirmed=int(np.sum(model_class == target)))


def _labelled_folders(folders):
    from .datasets import load_pbc

    files, target = [], []
    for folder in folders:
        data = load_pbc(folder, verbose=False, cache=False)
        files += [str(p) for p in data.images]
        target += [str(t) for t in data.target]
    return np.array(files, dtype=str), np.array(target, dtype=str)


def adapt_to_corrections(model, corrections, *, folders=(), images=None, check=True,
                         random_state=0, **params):
    """Fine-tune ``model`` on a review's corrected (and confirmed) cells, and
    keep the result only where it is better on cells it did not see.

    With ``check`` (the default), the fine-tuning is first tried three times,
    each time holding back a third of the reviewed cells (stratified
    cross-validation, :func:`leukosk.model_selection.held_back_gain`): the
    adapted model is kept only where, over the cells held back, it gets more
    right than the starting model. Otherwise the starting model is returned
    unchanged, and its card says so: a review of cells the model already
    classifies well (a lab it knows) never makes it worse. Checking costs
    three more fine-tunings.

    Parameters
    ----------
    model : str, path-like or LeukoskWeights
        The model that made the count: ``"default"`` (the shipped model) or a
        shipped model's name, a model folder or a ``.safetensors`` file.
    corrections : path-like or Bunch
        ``corrections.csv`` from the review page, or :func:`read_corrections`'s
        result.
    folders : sequence of path-like, default=()
        More labelled cells (one subfolder per class) to train on.
    images : path-like, default=None
        The counted folder, where the cells of ``corrections`` are.
    check : bool, default=True
        Hold cells back to check that adapting helps (see above); ``False``
        adapts without checking.
    random_state : int or None, default=0
    **params
        Parameters of :func:`leukosk.protocols.few_shot_classifier`
        (``train="head"``, ``max_epochs``, ``lr``, ``tta``, ``device``...).

    Returns
    -------
    VGG19LeukocyteClassifier
        Fitted, with every class of ``model``; ``card_`` says what it was
        adapted from, on how many cells, whether the adaptation was kept
        (``adapted``), the check's counts (``check``) and the decision in
        words (``decision``), which :func:`write_adapted_model` writes beside
        it.

    Examples
    --------
    One bundled cell of each class, reviewed (seven corrected, one confirmed),
    and a one-epoch fine-tune of the shipped model on them:

    >>> import pathlib, tempfile
    >>> from leukosk.corrections import adapt_to_corrections
    >>> from leukosk.datasets import load_pbc_sample
    >>> cells = [pathlib.Path(p) for p in load_pbc_sample(return_paths=True).images[::20]]
    >>> folder = cells[0].parents[1]                # the "counted" folder
    >>> rows = ["file,model_class,corrected_class"] + [
    ...     f"{c.parent.name}/{c.name},ig,{c.parent.name}" for c in cells]
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = pathlib.Path(d, "corrections.csv").write_text("\\n".join(rows) + "\\n")
    ...     clf = adapt_to_corrections("default", pathlib.Path(d, "corrections.csv"),
    ...                                images=folder, max_epochs=1, tta=False,
    ...                                device="cpu")
    >>> clf.card_["n_cells"], clf.card_["n_corrected"], len(clf.classes_)
    (8, 7, 8)
    >>> clf.card_["decision"]  # one cell per class: none to hold back
    'adapted without a check: no class has 3 reviewed cells to hold back'
    """
    from .fields import parse_cell_name, read_cells
    from .weights._shipped import resolve_leukosk_weights

    fixes = corrections if isinstance(corrections, Bunch) else read_corrections(
        corrections, images=images)
    extra_files, extra_target = _labelled_folders(folders)
    X = np.concatenate([np.asarray(fixes.files, dtype=str), extra_files])
    y = np.concatenate([np.asarray(fixes.target, dtype=str), extra_target])
    source = resolve_leukosk_weights(resolve_model(model))
    if source is None:
        raise ValueError(f"{model!r} is not a leukosk model: name a model folder, a "
                         ".safetensors file written by leukosk, or 'default'.")
    classes = list(source.meta["classes"])
    unknown = sorted(str(c) for c in set(y) - set(classes))
    if unknown:
        raise ValueError(f"class(es) {unknown} are not classes of the model "
                         f"({', '.join(classes)}); fix the corrected_class column.")
    if any(parse_cell_name(x) is not None for x in fixes.files):  # cells of fields
        X = read_cells(X, load_model(source, device="cpu").decode_size_)
    clf, gain, kept = adapt_checked(source, X, y, classes=classes, check=check,
                                    random_state=random_state, **params)
    recipe = {k: v for k, v in params.items() if k not in ("device", "verbose")}
    clf.card_ = {
        "adapted_from": str(source), "adapted": not kept,
        "decision": _decision(gain, kept),
        "check": None if gain is None else {k: gain[k] for k in (
            "n", "start_correct", "adapted_correct")},
        "recipe": "leukosk.protocols.few_shot_classifier"
                  + (f" with {recipe}" if recipe else ""),
        "n_cells": int(len(y)), "n_corrected": fixes.n_corrected,
        "n_confirmed": fixes.n_confirmed, "n_from_folders": int(len(extra_target)),
        "folders": [Path(f).name for f in folders],
        "cells_per_class": {c: int(np.sum(y == c)) for c in classes if np.any(y == c)},
        "classes": classes}
    return clf


def adapt_checked(source, X, y, *, classes, check=True, start=None, random_state=0,
                  **params):
    """The few-shot fine-tune of ``source`` on labelled cells, kept only
    where it gets more of them right, each held back once, than ``source``.

    The one decision of :func:`adapt_to_corrections` (``leukosk adapt``) and
    of the cross-lab evaluation (:func:`leukosk.labs.evaluate_labs`): with
    ``check``, :func:`~leukosk.model_selection.held_back_gain` fine-tunes
    three times, each time holding back a third of the cells, and the
    adaptation is made only where the adapted models got more of the held-back
    cells right than the starting model.

    Parameters
    ----------
    source : LeukoskWeights or path-like
        The starting model (:func:`~leukosk.resolve_model`'s answer).
    X : images or paths
    y : array-like of shape (n,)
    classes : list
        The classes of the adapted model (the starting model's).
    check : bool, default=True
    start : fitted VGG19LeukocyteClassifier, default=None
        ``source`` already loaded (loaded here where needed).
    random_state : int or None, default=0
    **params
        Parameters of :func:`leukosk.protocols.few_shot_classifier`.

    Returns
    -------
    clf : VGG19LeukocyteClassifier
        Fitted: the adapted model, or ``start`` itself where kept.
    gain : Bunch or None
        The check's counts (None: not checked, or no class with 3 cells).
    kept : bool
        Whether the starting model was kept.

    Examples
    --------
    >>> from leukosk import resolve_model
    >>> from leukosk.corrections import adapt_checked
    >>> from leukosk.datasets import load_pbc_sample
    >>> sample = load_pbc_sample()
    >>> source = resolve_model("default")
    >>> classes = list(source.meta["classes"])
    >>> clf, gain, kept = adapt_checked(source, sample.images[::5], sample.target[::5],
    ...                                 classes=classes, max_epochs=1, tta=False,
    ...                                 device="cpu")
    >>> gain.n, kept == (gain.adapted_correct <= gain.start_correct)
    (32, True)
    """
    from .protocols import few_shot_classifier

    clf = few_shot_classifier(source, classes=classes, random_state=random_state,
                              **params)
    if start is None and check:
        start = load_model(source, device=params.get("device", "auto"))
    gain = _checked_gain(start, clf, X, y, random_state) if check else None
    kept = gain is not None and gain.adapted_correct <= gain.start_correct
    if kept:
        return start, gain, True
    return clf.fit(X, y), gain, False


def _checked_gain(start, clf, X, y, random_state):
    """The adaptation tried with cells held back (``held_back_gain``), quietly."""
    from .model_selection import held_back_gain

    return held_back_gain(start, clone(clf).set_params(verbose=0), X, y,
                          random_state=random_state)


def _decision(gain, kept):
    """The check's outcome in words (the card's ``decision``, printed by the CLI)."""
    if gain is None:
        return "adapted without a check: no class has 3 reviewed cells to hold back"
    counts = (f"on the {gain.n} reviewed cells, each held back once (3-fold), the "
              f"adapted model was right on {gain.adapted_correct} and the starting "
              f"model on {gain.start_correct}")
    if kept:
        return f"kept the starting model unchanged: adapting would not help ({counts})"
    return f"adapted: {counts}"


def write_adapted_model(clf, out_dir):
    """Save an adapted model: ``model.safetensors`` and ``model_card.json``.

    ``leukosk count MODEL_DIR ...`` then counts with it.

    Parameters
    ----------
    clf : fitted VGG19LeukocyteClassifier
        Usually from :func:`adapt_to_corrections`, whose ``card_`` is written
        as the card (with the leukosk version).
    out_dir : path-like
        The model folder, created if missing; both files are written
        together, all or none (:func:`leukosk.utils._files.atomic_paths`):
        a failure never leaves a new model beside the card of the old one.

    Returns
    -------
    pathlib.Path
        The model file.

    Examples
    --------
    >>> import pathlib, tempfile, numpy as np
    >>> from leukosk import VGG19LeukocyteClassifier
    >>> from leukosk.corrections import write_adapted_model
    >>> clf = VGG19LeukocyteClassifier(weights=None, image_size=32, max_epochs=1,
    ...     verbose=0, module__width=0.25, module__hidden_units=16).fit(
    ...     np.zeros((4, 32, 32, 3), np.uint8), [0, 1, 0, 1])
    >>> with tempfile.TemporaryDirectory() as d:
    ...     model = write_adapted_model(clf, d)
    ...     sorted(p.name for p in pathlib.Path(d).iterdir())
    ['model.safetensors', 'model_card.json']
    """
    from ._version import __version__

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{printable(out)} is a file; name a folder for the "
                                 "model.")
    card = dict(getattr(clf, "card_", {}), leukosk_version=__version__,
                model_file=MODEL_FILE)
    with atomic_paths(out / CARD_FILE, out / MODEL_FILE) as (card_tmp, model_tmp):
        card_tmp.write_text(json.dumps(card, indent=2))
        clf.save(model_tmp)
    return out / MODEL_FILE
