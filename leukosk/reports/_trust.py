"""Figures a lab needs to trust predictions: reliability, Grad-CAM, top losses, counts."""

import numpy as np

from ..explain import overlay  # lives with Grad-CAM; re-exported here, as before
from ..utils._images import take_images
from ._figures import _pyplot

__all__ = ["plot_reliability_diagram", "plot_grad_cam", "plot_top_losses",
           "plot_differential_count", "overlay", "trust_report", "trust_markdown"]


def plot_reliability_diagram(y_true, probas, classes, *, labels=None, n_bins=15, ax=None,
                             title=None):
    """Reliability diagram: accuracy against top-label confidence, with the ECE.

    Parameters
    ----------
    y_true : array-like of shape (n,)
    probas : array of shape (n, n_classes), or a list of them
        One curve per array (e.g. before and after calibration).
    classes : array-like of shape (n_classes,)
    labels : list of str, default=None
        Legend entries, one per array of ``probas``.
    n_bins : int, default=15
        Equal-width confidence bins (the ECE's bins too).
    ax : matplotlib Axes, default=None
    title : str, default=None

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np, matplotlib
    >>> matplotlib.use("Agg")
    >>> from leukosk.reports import plot_reliability_diagram
    >>> proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    >>> fig = plot_reliability_diagram(["a", "b", "b"], proba, ["a", "b"])
    >>> fig.axes[0].get_xlabel()
    'confidence (top-label probability)'
    """
    from ..uncertainty import expected_calibration_error, reliability_curve

    plt = _pyplot()
    probas = probas if isinstance(probas, (list, tuple)) else [probas]
    labels = labels or [f"model {i + 1}" for i in range(len(probas))]
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(4.8, 4.6))
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="calibrated")
    for proba, label in zip(probas, labels):
        curve = reliability_curve(y_true, proba, classes, n_bins=n_bins)
        ece = expected_calibration_error(y_true, proba, classes, n_bins=n_bins)
        filled = curve.count > 0
        ax.plot(curve.confidence[filled], curve.accuracy[filled], marker="o", ms=4,
                label=f"{label} (ECE {100 * ece:.1f} %)")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top-label probability)",
           ylabel="accuracy", title=title or f"Reliability ({n_bins} equal-width bins)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def plot_grad_cam(images, cams, *, titles=None, ncols=4, alpha=0.45):
    """A grid of images with their Grad-CAM maps laid over them.

    Parameters
    ----------
    images : array of shape (n, H, W, 3) or list of arrays
    cams : array of shape (n, H, W) or list, in [0, 1] (from
        :func:`leukosk.explain.grad_cam`)
    titles : list of str, default=None
    ncols : int, default=4
    alpha : float, default=0.45
        Opacity of the map.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np, matplotlib
    >>> matplotlib.use("Agg")
    >>> from leukosk.reports import plot_grad_cam
    >>> fig = plot_grad_cam(np.zeros((2, 8, 8, 3), np.uint8), np.ones((2, 8, 8)),
    ...                     titles=["a", "b"])
    >>> len(fig.axes)
    2
    """
    plt = _pyplot()
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.4 * ncols, 2.6 * nrows),
                             squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        if i >= n:
            fig.delaxes(ax)
            continue
        ax.imshow(overlay(images[i], cams[i], alpha))
        ax.set_xticks([])
        ax.set_yticks([])
        if titles:
            ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    return fig


def plot_top_losses(clf, X, y, *, k=9, proba=None, ncols=3):
    """The misclassified images with the highest loss, with their Grad-CAM.

    As fastai's "top losses": the images the model got most confidently
    wrong, each titled with its true and predicted class and the probability
    given to the true one, the map showing what drove the wrong prediction.

    Parameters
    ----------
    clf : fitted VGG19LeukocyteClassifier
    X : array of shape (n, H, W, 3)
    y : array-like of shape (n,)
    k : int, default=9
    proba : array of shape (n, n_classes), default=None
        ``clf.predict_proba(X)`` if already computed.
    ncols : int, default=3

    Returns
    -------
    figure : matplotlib.figure.Figure or None
        None when nothing is misclassified.
    rows : list of dict
        ``index``, ``true``, ``predicted``, ``p_true``, ``loss`` of each shown image.
    """
    from ..explain import grad_cam
    from ..utils._labels import encode

    y = np.asarray(y)
    classes = clf.classes_
    true_index = encode(y, classes)  # columns in the order of classes_, sorted or not
    proba = clf.predict_proba(X) if proba is None else np.asarray(proba)
    p_true = proba[np.arange(len(y)), true_index]
    predicted = classes[proba.argmax(1)]
    wrong = np.flatnonzero(predicted != y)
    order = wrong[np.argsort(p_true[wrong])][:k]
    rows = [{"index": int(i), "true": str(y[i]), "predicted": str(predicted[i]),
             "p_true": float(p_true[i]), "loss": float(-np.log(max(p_true[i], 1e-12)))}
            for i in order]
    if not rows:
        return None, rows
    shown = take_images(X, order)
    cams, _ = grad_cam(clf, shown)
    titles = [f"true {r['true']}\npred {r['predicted']} (p_true {r['p_true']:.2f})"
              for r in rows]
    from ..utils._images import image_arrays

    return plot_grad_cam(image_arrays(shown), cams, titles=titles, ncols=ncols), rows


#: The scikit-learn release that brought ``CalibratedClassifierCV(method=
#: "temperature")`` (the floor of leukosk's requirement, see pyproject.toml).
TEMPERATURE_SCALING_SINCE = (1, 8)


def _check_temperature_scaling():
    """A clear error where scikit-learn predates temperature scaling."""
    import re

    import sklearn

    version = tuple(int(part) for part in re.findall(r"\d+", sklearn.__version__)[:2])
    if version < TEMPERATURE_SCALING_SINCE:
        since = ".".join(map(str, TEMPERATURE_SCALING_SINCE))
        raise ValueError(
            f"scikit-learn {sklearn.__version__} has no temperature scaling "
            f"(CalibratedClassifierCV(method='temperature') came with scikit-learn "
            f"{since}, which leukosk requires): pip install 'scikit-learn>={since}'")


#: The most bars :func:`plot_differential_count` draws.
MAX_BARS = 30


def plot_differential_count(count, *, ax=None, title=None):
    """Bar chart of a differential count: percent per class with its interval.

    Parameters
    ----------
    count : Bunch
        From :func:`leukosk.count.differential_count`. Of a model with more
        than ``MAX_BARS`` (30) classes, only the 30 most frequent are drawn.
    ax : matplotlib Axes, default=None
    title : str, default=None

    Returns
    -------
    matplotlib.figure.Figure
    """
    from ..utils._output import printable

    plt = _pyplot()
    table = count.table
    if len(table) > MAX_BARS:  # a bar per class of a 1000-class model is unreadable
        table = sorted(table, key=lambda row: -row["count"])[:MAX_BARS]
        title = title or f"Differential count: the {MAX_BARS} most frequent of " \
                         f"{len(count.table)} classes"
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6.4, 3.6))
    names = [printable(row["class"]) for row in table]  # no control characters
    percent = np.array([row["percent"] for row in table])
    low = percent - np.array([row["ci_low"] for row in table])
    high = np.array([row["ci_high"] for row in table]) - percent
    ax.bar(names, percent, color="#6c8ebf", yerr=[low, high], capsize=4)
    for x, (p, row) in enumerate(zip(percent, table)):
        ax.text(x, p + high[x] + 1, str(row["count"]), ha="center", fontsize=8)
    ax.set_ylabel(f"percent of {count.n_cells} cells")
    ax.set_ylim(0, min(100, max(percent + high) + 10))
    ax.set_title(title or f"Differential count ({count.confidence:.0%} Wilson intervals)")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return fig


def trust_report(clf, X, y, *, calibration_fraction=0.5, coverage=(0.9, 0.95),
                 n_bins=15, k_top_losses=9, random_state=0):
    """Calibration, conformal sets and top losses of a fitted classifier.

    The labelled images are split in two, stratified: a calibration part fits
    scikit-learn's temperature scaling
    (``CalibratedClassifierCV(FrozenEstimator(clf), method="temperature")``)
    and MAPIE's split-conformal sets; the other part measures the top-label
    ECE before and after, the sets' coverage and size, the share of cells
    referred (set not a single class), the accuracy on the others, and shows
    the top losses with their Grad-CAM.

    Parameters
    ----------
    clf : fitted VGG19LeukocyteClassifier
    X : array of shape (n, H, W, 3)
    y : array-like of shape (n,)
    calibration_fraction : float, default=0.5
    coverage : sequence of float, default=(0.9, 0.95)
    n_bins : int, default=15
        Equal-width bins of the ECE and the reliability diagram.
    k_top_losses : int, default=9
    random_state : int, default=0
        Seeds the calibration split.

    Raises
    ------
    ValueError
        With fewer than 4 images of a class, or where scikit-learn predates
        temperature scaling (1.8).

    Returns
    -------
    summary : dict
        JSON-ready numbers (``ece_before``, ``ece_after``, ``temperature``,
        ``conformal`` per coverage, ``top_losses``, sizes).
    figures : dict of str to matplotlib Figure
        ``reliability`` and, when any image is misclassified, ``top_losses``.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator
    from sklearn.model_selection import train_test_split

    from ..uncertainty import (ConformalSets, conformalize, expected_calibration_error,
                               referred)
    from ..utils._labels import encode

    _check_temperature_scaling()
    y = np.asarray(y)
    if np.unique(y, return_counts=True)[1].min() < 4:
        raise ValueError("too few images per class to split into calibration and test "
                         "parts (at least 4 of each class are needed)")
    X_cal, X_test, y_cal, y_test = train_test_split(
        X, y, train_size=calibration_fraction, stratify=y, random_state=random_state)
    proba = clf.predict_proba(X_test)
    folds = int(min(5, np.unique(y_cal, return_counts=True)[1].min()))
    calibrated = CalibratedClassifierCV(FrozenEstimator(clf), method="temperature",
                                        cv=folds)
    calibrated.fit(X_cal, y_cal)
    classes = clf.classes_
    # scikit-learn's columns are in sorted order (its LabelEncoder): back to clf's
    proba_after = np.zeros_like(proba)
    proba_after[:, encode(calibrated.classes_, classes)] = calibrated.predict_proba(X_test)
    sets = ConformalSets.from_mapie(conformalize(clf, X_cal, y_cal,
                                                 confidence_level=list(coverage)))
    truth = encode(y_test, classes)
    conformal = {}
    for level in coverage:
        in_set = sets.predict_set(proba, level)
        refer = referred(in_set)
        accepted = ~refer
        conformal[f"{level:g}"] = {
            "threshold": sets.threshold(level),
            "coverage": float(in_set[np.arange(len(y_test)), truth].mean()),
            "mean_set_size": float(in_set.sum(1).mean()),
            "referred": float(refer.mean()),
            "accuracy_not_referred": float(np.mean(
                classes[proba[accepted].argmax(1)] == y_test[accepted]))
            if accepted.any() else float("nan"),
            "referred_by_class": {str(c): float(refer[y_test == c].mean())
                                  for c in classes if np.any(y_test == c)},
        }
    figures = {"reliability": plot_reliability_diagram(
        y_test, [proba, proba_after], classes, labels=["as trained", "temperature-scaled"],
        n_bins=n_bins)}
    top, rows = plot_top_losses(clf, X_test, y_test, k=k_top_losses, proba=proba)
    if top is not None:
        figures["top_losses"] = top
    summary = {
        "n_calibration": int(len(y_cal)), "n_test": int(len(y_test)), "n_bins": n_bins,
        "ece_before": expected_calibration_error(y_test, proba, classes, n_bins=n_bins),
        "ece_after": expected_calibration_error(y_test, proba_after, classes, n_bins=n_bins),
        "accuracy": float(np.mean(classes[proba.argmax(1)] == y_test)),
        "conformal": conformal, "top_losses": rows,
    }
    return summary, figures


def trust_markdown(summary):
    """The trust section of a report, as Markdown."""
    lines = [
        "## How far to trust it", "",
        f"Measured on {summary['n_test']} images; {summary['n_calibration']} others "
        "fitted the temperature and the conformal thresholds.", "",
        "| | value |", "| --- | --- |",
        f"| top-label ECE as trained ({summary['n_bins']} equal-width bins) | "
        f"{100 * summary['ece_before']:.1f} % |",
        f"| top-label ECE after temperature scaling | {100 * summary['ece_after']:.1f} % |",
        "",
        "| coverage asked | coverage measured | mean set size | cells referred "
        "| accuracy on the others |",
        "| --- | --- | --- | --- | --- |",
    ]
    for level, row in summary["conformal"].items():
        lines.append(f"| {100 * float(level):.0f} % | {100 * row['coverage']:.1f} % | "
                     f"{row['mean_set_size']:.2f} | {100 * row['referred']:.1f} % | "
                     f"{100 * row['accuracy_not_referred']:.1f} % |")
    lines += ["", "![reliability](reliability.png)"]
    if summary["top_losses"]:
        lines += ["", "Top losses (misclassified images the model was surest of), with "
                      "what it looked at:", "", "![top losses](top_losses.png)"]
    return "\n".join(lines) + "\n"
