"""The white-cell differential: count and percentage of each class, with intervals.

A lab reports, for one blood sample, how many cells of each type it counted
and their share; :func:`differential_count` does that for a folder of cell
images of one sample, with a 95 % confidence interval for each share (Wilson's
score interval, via :func:`scipy.stats.binomtest`: scipy is already installed
with scikit-learn, and Wilson's interval behaves well for the small counts and
the shares near 0 % a differential has, where the normal approximation does
not), and lists the cells whose conformal prediction set is not a single
class, for a person to look at.
"""

import json
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from .utils._output import encode_name

__all__ = ["differential_count", "wilson_interval", "write_count_files"]

#: The files :func:`write_count_files` writes.
COUNT_FILES = ("count.csv", "referred.csv", "count.json")


def check_level(value, name):
    """``value`` as a float strictly between 0 and 1 (a confidence level).

    Examples
    --------
    >>> from leukosk.count import check_level
    >>> check_level(float("nan"), "confidence")
    Traceback (most recent call last):
    ...
    ValueError: confidence=nan: a confidence level is a number between 0 and 1 (exclusive), e.g. 0.95.
    """
    try:
        level = float(value)
    except (TypeError, ValueError):
        level = float("nan")
    if not 0 < level < 1:  # NaN fails too
        raise ValueError(f"{name}={value!r}: a confidence level is a number between 0 "
                         "and 1 (exclusive), e.g. 0.95.")
    return level


def wilson_interval(count, total, confidence=0.95):
    """Wilson's score interval for the proportion ``count / total``.

    Examples
    --------
    >>> from leukosk.count import wilson_interval
    >>> low, high = wilson_interval(5, 100)
    >>> round(low, 3), round(high, 3)
    (0.022, 0.112)
    """
    from scipy.stats import binomtest

    confidence = check_level(confidence, "confidence")
    if total == 0:
        return float("nan"), float("nan")
    interval = binomtest(int(count), int(total)).proportion_ci(
        confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


def differential_count(clf, images, *, names=None, confidence=0.95, sets=None,
                       coverage=0.95):
    """Count the cells of one sample by predicted class, with intervals and referrals.

    Parameters
    ----------
    clf : fitted classifier with ``predict_proba`` and ``classes_``
    images : array of shape (n, H, W, 3) or sequence of image paths
        The cells of one sample.
    names : sequence of str, default=None
        A name per cell (file names), used to list the referred cells; by
        default the paths, or the indices.
    confidence : float, default=0.95
        Confidence of the intervals of the shares.
    sets : None, ConformalSets or MAPIE SplitConformalClassifier, default=None
        Prediction sets at ``coverage``: cells whose set is not exactly one
        class are referred. ``None`` refers none (``referred`` is then empty
        and ``referral`` is ``None``).
    coverage : float, default=0.95
        The sets' confidence level.

    Returns
    -------
    Bunch
        ``table``: a list of dicts, one per class (``class``, ``count``,
        ``percent``, ``ci_low``, ``ci_high`` in percent), in ``classes_`` order;
        ``n_cells``; ``referred`` (the referred cells: ``name``, ``index``
        in ``images``, ``predicted`` class and ``set``); ``referral`` (how the sets were made);
        ``labels`` and ``proba`` per cell.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.dummy import DummyClassifier
    >>> from leukosk.count import differential_count
    >>> model = DummyClassifier(strategy="stratified", random_state=0).fit(
    ...     np.zeros((4, 1)), ["lymphocyte", "neutrophil", "neutrophil", "neutrophil"])
    >>> count = differential_count(model, np.zeros((40, 1)))
    >>> [row["class"] for row in count.table], count.n_cells
    (['lymphocyte', 'neutrophil'], 40)
    """
    from .uncertainty import ConformalSets, referred

    confidence = check_level(confidence, "confidence")
    coverage = check_level(coverage, "coverage")
    proba = np.asarray(clf.predict_proba(images))
    classes = np.asarray(clf.classes_)
    labels = classes[proba.argmax(axis=1)]
    n = len(labels)
    if names is None:  # the paths, or the indices of an image array
        pixels = isinstance(images, np.ndarray) and images.dtype.kind not in "USO"
        names = [str(i) for i in range(n)] if pixels else [str(p) for p in images]
    table = []
    for label in classes:
        k = int(np.sum(labels == label))
        low, high = wilson_interval(k, n, confidence)
        table.append({"class": str(label), "count": k, "percent": 100.0 * k / max(n, 1),
                      "ci_low": 100.0 * low, "ci_high": 100.0 * high})
    referrals, how = [], None
    if sets is not None:
        if isinstance(sets, ConformalSets):
            in_set = sets.predict_set(proba, coverage)
            how = f"conformal sets at {coverage:.0%} (stored LAC thresholds)"
        else:  # a conformalized MAPIE classifier
            in_set = _mapie_sets(sets, images, coverage, classes)
            how = f"conformal sets at {coverage:.0%} (MAPIE, LAC)"
        for i in np.flatnonzero(referred(in_set)):
            referrals.append({"name": names[i], "index": int(i),
                              "predicted": str(labels[i]),
                              "set": [str(c) for c in classes[in_set[i]]]})
    return Bunch(table=table, n_cells=n, referred=referrals, referral=how,
                 labels=labels, proba=proba, confidence=confidence, classes=classes)


def write_count_files(folder, count, *, model=None, lab_shift=None, fields=None):
    """Write a differential count as ``count.csv``, ``referred.csv`` and ``count.json``.

    The files of ``leukosk count``, each written atomically (a crash leaves
    the previous file or the new one). Text from files and models is
    written in the one encoding of names
    (:func:`leukosk.utils._output.encode_name`: a name that is not valid
    UTF-8 shows its bytes as ``\\xNN``, a backslash is doubled), the same in
    CSV and JSON, and CSV cells that a spreadsheet would run as a formula get
    a leading apostrophe.

    Parameters
    ----------
    folder : path-like
        An existing folder; the three files in it are replaced.
    count : Bunch
        From :func:`differential_count`.
    model : str, default=None
        Names the model that counted (``count.json``'s ``model``).
    lab_shift : Bunch or dict, default=None
        The verdict of :func:`leukosk.domain.watch_lab_shift` (``score``,
        ``threshold``, ``shifted``); None when the images were not checked
        (all three are then null).
    fields : Bunch, default=None
        Where the cells were found in microscope fields (``leukosk count
        --fields``): ``n_fields``, ``field_names`` and ``boxes`` (each
        cell's field and box) and ``empty_names`` (the fields without a
        white cell); written to ``count.json``'s ``fields``.

    Returns
    -------
    dict
        ``{"csv": path, "referred": path, "json": path}``.

    Notes
    -----
    ``count.csv``: ``class, count, percent, ci_low, ci_high`` (percentages,
    two decimals); ``referred.csv``: ``file, predicted, plausible classes``
    (the set, space-separated); ``count.json``: ``model``, ``n_cells``,
    ``confidence``, ``interval``, ``table``, ``referral``, ``referred``,
    ``lab_shift`` and, for fields, ``fields`` (``n_fields``, ``empty``: the
    fields without a white cell, ``cells``: each cell's ``field`` and
    ``box``, in the order of the count).

    Examples
    --------
    >>> import json, pathlib, tempfile
    >>> import numpy as np
    >>> from sklearn.dummy import DummyClassifier
    >>> from leukosk.count import differential_count, write_count_files
    >>> model = DummyClassifier().fit(np.zeros((4, 1)), ["ig", "neutrophil"] * 2)
    >>> count = differential_count(model, np.zeros((10, 1)))
    >>> with tempfile.TemporaryDirectory() as d:
    ...     paths = write_count_files(d, count, model="a dummy")
    ...     print(paths["csv"].read_text().splitlines()[1])
    ...     json.loads(paths["json"].read_text())["n_cells"]
    ig,10,100.00,72.25,100.00
    10
    """
    from .utils._files import atomic_path
    from .utils._output import write_csv

    folder = Path(folder)
    paths = {"csv": folder / "count.csv", "referred": folder / "referred.csv",
             "json": folder / "count.json"}
    write_csv(paths["csv"], ["class", "count", "percent", "ci_low", "ci_high"],
              ([row["class"], row["count"], f"{row['percent']:.2f}",
                f"{row['ci_low']:.2f}", f"{row['ci_high']:.2f}"] for row in count.table))
    write_csv(paths["referred"], ["file", "predicted", "plausible classes"],
              ([row["name"], row["predicted"], " ".join(row["set"])]
               for row in count.referred))
    shift = {} if lab_shift is None else lab_shift
    document = {"model": None if model is None else encode_name(model),
                "n_cells": count.n_cells, "confidence": count.confidence,
                "interval": "Wilson score",
                "table": [dict(row, **{"class": encode_name(row["class"])})
                          for row in count.table],
                "referral": count.referral,
                "referred": [dict(row, name=encode_name(row["name"]),
                                  predicted=encode_name(row["predicted"]),
                                  set=[encode_name(c) for c in row["set"]])
                             for row in count.referred],
                "lab_shift": {key: shift.get(key) for key in
                              ("score", "threshold", "unsure", "unsure_threshold",
                               "shifted")}}
    if fields is not None:
        document["fields"] = {
            "n_fields": int(fields.n_fields),
            "empty": [encode_name(name) for name in fields.empty_names],
            "cells": [{"field": encode_name(name), "box": [int(round(float(v))) for v in box]}
                      for name, box in zip(fields.field_names, fields.boxes)]}
    with atomic_path(paths["json"]) as tmp:
        tmp.write_text(json.dumps(document, indent=2, allow_nan=False))
    return paths


def _mapie_sets(conformal, images, coverage, classes):
    """MAPIE's sets at ``coverage``, their columns in the order of ``classes``
    (MAPIE's are in its own classes' order, sorted)."""
    from .utils._labels import encode

    levels = [round(1 - alpha, 10) for alpha in conformal._alphas]
    if round(coverage, 10) not in levels:
        raise ValueError(f"the conformal classifier has levels {levels}, not {coverage}.")
    _, sets = conformal.predict_set(images)
    columns = encode(classes, conformal._mapie_classifier.classes_, what="classes_")
    return sets[:, columns, levels.index(round(coverage, 10))]
