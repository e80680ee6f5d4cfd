"""How a model does in each lab: one table, before and after a review.

A model is measured where it was trained; a lab that wants to use it needs
the figure for its own images. :func:`evaluate_labs` takes labelled folders
of one or more labs (one subfolder per class, as PBC's) and gives, for each,
what a user of leukosk would get: the plain answer of ``leukosk predict``
(all the model's classes), the answer among the classes the folder holds,
whether the lab-shift warning fires, and the accuracy on the other cells
after ``leukosk adapt`` on ``k`` reviewed cells per class (its held-back
check included, so that a review that would not help keeps the model), over
several random reviews.
"""

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.utils import check_random_state

from .classifier._pretrained import load_model, resolve_model
from .corrections import adapt_checked
from .domain import MIN_IMAGES, LabShiftMonitor, lab_shift_reasons
from .utils._files import atomic_path
from .utils._images import take_images

__all__ = ["evaluate_labs", "LabTable", "COLUMNS"]

#: The table's columns, in order, and what each holds.
COLUMNS = {
    "lab": "the lab's name",
    "n_images": "labelled images in its folder",
    "n_classes": "classes its folder holds",
    "accuracy_8": "accuracy of the plain answer (every class of the model)",
    "accuracy": "accuracy choosing among the classes the folder holds",
    "balanced_accuracy": "balanced accuracy, among the classes the folder holds",
    "called_absent": "share of its cells called a class the folder lacks",
    "lab_shift": "whether the lab-shift warning fires on the whole folder",
    "lab_shift_score": "the folder's lab-shift score",
    "unsure": "the folder's unsureness (mean 1 - top probability)",
    "reviews": "random reviews of k cells per class (0: no adaptation)",
    "n_scored": "cells not reviewed, on which a review is scored",
    "before_8": "plain answer on the cells not reviewed, before (mean over reviews)",
    "after_8": "plain answer on the cells not reviewed, after leukosk adapt (mean)",
    "after_8_min": "the worst review's after_8",
    "before": "classes-present accuracy on the cells not reviewed, before (mean)",
    "after": "classes-present accuracy on the cells not reviewed, after (mean)",
    "kept": "reviews whose held-back check kept the model unchanged",
}


class LabTable:
    """The result of :func:`evaluate_labs`: one row per lab.

    Attributes
    ----------
    rows : list of dict
        One per lab, keyed by :data:`COLUMNS` (``None`` where not measured).
    model : str
        The model evaluated.

    Examples
    --------
    >>> from leukosk.labs import LabTable
    >>> table = LabTable([{"lab": "a", "n_images": 10, "accuracy_8": 0.9}], "m")
    >>> table["a"]["accuracy_8"]
    0.9
    >>> print(table)  # doctest: +NORMALIZE_WHITESPACE
    lab  images  classes  8-class  present  bal.  absent  warned  score  unsure
    reviews  before  after  worst  kept
    a    10      -        90.0 %   -        -     -       -       -      -
    -        -       -      -      -
    """

    def __init__(self, rows, model):
        self.rows = [dict({c: None for c in COLUMNS}, **row) for row in rows]
        self.model = model

    def __getitem__(self, lab):
        for row in self.rows:
            if row["lab"] == lab:
                return row
        raise KeyError(f"no lab {lab!r} in the table ({[r['lab'] for r in self.rows]}).")

    def __len__(self):
        return len(self.rows)

    def __str__(self):
        header = ["lab", "images", "classes", "8-class", "present", "bal.", "absent",
                  "warned", "score", "unsure", "reviews", "before", "after", "worst",
                  "kept"]
        keys = ["lab", "n_images", "n_classes", "accuracy_8", "accuracy",
                "balanced_accuracy", "called_absent", "lab_shift", "lab_shift_score",
                "unsure", "reviews", "before_8", "after_8", "after_8_min", "kept"]
        percent = {"accuracy_8", "accuracy", "balanced_accuracy", "called_absent",
                   "before_8", "after_8", "after_8_min"}
        lines = [header] + [[_cell(row[k], k in percent) for k in keys] for row in self.rows]
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip()
                         for line in lines)

    def to_csv(self, path):
        """Write the table as CSV (one row per lab, :data:`COLUMNS`), atomically."""
        import csv

        with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(COLUMNS))
            writer.writeheader()
            writer.writerows(self.rows)
        return path


def _cell(value, percent):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if percent:
        return f"{100 * value:.1f} %"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _answers(proba, classes, y):
    """The plain answer and the answer among the classes ``y`` holds."""
    present = [c for c in classes if c in set(y.tolist())]
    plain = classes[proba.argmax(axis=1)]
    columns = [list(classes).index(c) for c in present]
    among = np.asarray(present, dtype=object)[proba[:, columns].argmax(axis=1)]
    return plain.astype(str), among.astype(str), present


def _load_lab(lab, size):
    """A lab as images and labels: a labelled folder, or ``(X, y)``."""
    if isinstance(lab, tuple) and len(lab) == 2:
        X, y = lab
        return X, np.asarray(y).astype(str)
    from .datasets import load_pbc

    data = load_pbc(lab, image_size=size, cache=False, verbose=False)
    return data.images, np.asarray(data.target).astype(str)


def _review(y, k, rng):
    """``k`` reviewed cells per class (fewer where a class is smaller, one of
    each always left to score), and the others."""
    reviewed = np.concatenate([rng.choice(np.flatnonzero(y == c),
                                          min(k, int(np.sum(y == c)) - 1), replace=False)
                               for c in np.unique(y)]).astype(int)
    return np.sort(reviewed), np.setdiff1d(np.arange(len(y)), reviewed)


def _reviews(source, start, X, y, *, k, n_draws, check, random_state, params):
    """Before and after ``leukosk adapt`` on ``n_draws`` random reviews."""
    rng = check_random_state(random_state)
    classes = np.asarray(start.classes_).astype(str)
    proba = start.predict_proba(X)
    draws = []
    for _ in range(n_draws):
        reviewed, others = _review(y, k, rng)
        adapted, _, kept = adapt_checked(
            source, take_images(X, reviewed), y[reviewed], classes=list(start.classes_),
            check=check, start=start, random_state=0, **params)
        after = proba[others] if kept else adapted.predict_proba(take_images(X, others))
        before = _answers(proba[others], classes, y)
        now = _answers(after, classes, y)
        draws.append({"before_8": accuracy_score(y[others], before[0]),
                      "after_8": accuracy_score(y[others], now[0]),
                      "before": accuracy_score(y[others], before[1]),
                      "after": accuracy_score(y[others], now[1]), "kept": kept})
    return {"reviews": n_draws, "n_scored": len(others), **{key: float(np.mean([d[key] for d in draws]))
                                   for key in ("before_8", "after_8", "before", "after")},
            "after_8_min": float(min(d["after_8"] for d in draws)),
            "kept": int(sum(d["kept"] for d in draws))}


def evaluate_labs(labs, model="default", *, k=10, n_draws=3, check=True,
                  random_state=0, device="auto", **params):
    """Measure a model on labelled images of each lab, before and after a review.

    For each lab: the plain answer (``leukosk predict``), the answer among
    the classes the lab's folder holds, how often a cell is called a class
    the folder lacks, and the lab-shift verdict on the whole folder (both
    channels, without a warning); then ``n_draws`` random reviews of ``k``
    cells per class, each adapted as ``leukosk adapt`` adapts (few-shot
    fine-tune, kept only where the held-back check finds it better) and
    scored on the lab's other cells, against the starting model on the same
    cells.

    Parameters
    ----------
    labs : dict
        Lab name -> a labelled folder (one subfolder per class, named as the
        model's classes, as PBC's) or a pair ``(X, y)`` of images (or paths)
        and labels.
    model : str, path-like or LeukoskWeights, default="default"
        As ``leukosk predict --model``: the shipped model, a shipped
        model's name, a model folder or file.
    k : int, default=10
        Reviewed cells per class.
    n_draws : int, default=3
        Random reviews per lab; 0 measures the model as it is only.
    check : bool, default=True
        The held-back check of ``leukosk adapt`` (``False``: ``--no-check``).
    random_state : int, default=0
        Draws the reviews.
    device : str, default="auto"
    **params
        Parameters of :func:`leukosk.protocols.few_shot_classifier` for the
        adaptation (``max_epochs``, ``lr``, ``tta``...).

    Returns
    -------
    LabTable
        ``print(table)`` shows it; ``table.rows``; ``table.to_csv(path)``.

    Examples
    --------
    The bundled PBC sample as a "lab", without reviews (a few seconds):

    >>> from leukosk.datasets import sample_folder
    >>> from leukosk.labs import evaluate_labs
    >>> table = evaluate_labs({"sample": sample_folder()}, n_draws=0, device="cpu")
    >>> row = table["sample"]
    >>> row["n_images"], row["n_classes"], row["accuracy_8"] > 0.9, row["lab_shift"]
    (160, 8, True, False)
    """
    if not isinstance(labs, dict) or not labs:
        raise ValueError("labs: a dict of lab name -> labelled folder or (X, y).")
    if not isinstance(n_draws, (int, np.integer)) or n_draws < 0:
        raise ValueError(f"n_draws={n_draws!r}: a number of reviews, 0 or more.")
    source = resolve_model(model)
    start = load_model(source, device=device)
    classes = np.asarray(start.classes_).astype(str)
    rows = []
    for name, lab in labs.items():
        X, y = _load_lab(lab, start.decode_size_)
        unknown = sorted(set(y.tolist()) - set(classes.tolist()))
        if unknown:
            raise ValueError(f"lab {name!r} has classes the model does not know: "
                             f"{unknown} (the model's: {', '.join(classes)}); rename "
                             "its subfolders.")
        with LabShiftMonitor(start) as monitor:
            proba = start.predict_proba(X)
        plain, among, present = _answers(proba, classes, y)
        row = {"lab": str(name), "n_images": len(y), "n_classes": len(present),
               "accuracy_8": accuracy_score(y, plain), "accuracy": accuracy_score(y, among),
               "balanced_accuracy": balanced_accuracy_score(y, among),
               "called_absent": float(np.mean(~np.isin(plain, present))),
               "lab_shift_score": monitor.score, "unsure": monitor.unsure}
        threshold = getattr(start, "lab_shift_threshold_", None)
        if threshold is not None and len(y) >= MIN_IMAGES:
            row["lab_shift"] = bool(lab_shift_reasons(
                monitor.score, threshold, monitor.unsure,
                getattr(start, "lab_shift_unsure_threshold_", None)))
        if n_draws:
            row.update(_reviews(source, start, X, y, k=k, n_draws=n_draws, check=check,
                                random_state=random_state,
                                params=dict(params, device=device)))
        rows.append(row)
    return LabTable(rows, str(source))
