"""How sure the classifier is: calibration error, and conformal prediction sets.

What scikit-learn and MAPIE already do is used as they are:

* calibrating a fitted classifier:
  ``CalibratedClassifierCV(FrozenEstimator(clf), method="temperature")``
  (scikit-learn's temperature scaling; ``"sigmoid"`` and ``"isotonic"`` too),
  fitted on a calibration split;
* conformal prediction sets: MAPIE's
  ``SplitConformalClassifier(clf, confidence_level=0.95, prefit=True)``,
  conformalized on a calibration split (:func:`conformalize` does both steps).

This module adds only what they lack for a cell classifier: the top-label
expected calibration error and its reliability curve (reported before and
after calibration), prediction sets from a stored threshold (so that a
shipped model can refer cells to an expert without its user holding
calibration data; :func:`stored_conformal_sets` reads them), and the referral
of cells whose set is not a single class.
"""

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import Bunch
from sklearn.utils.validation import column_or_1d

__all__ = ["expected_calibration_error", "reliability_curve", "conformalize",
           "ConformalSets", "stored_conformal_sets", "referred"]


def _top_label(y_true, proba, classes):
    proba = np.asarray(proba, dtype=float)
    y_true = column_or_1d(y_true)
    classes = np.asarray(classes)
    confidence = proba.max(axis=1)
    correct = classes[proba.argmax(axis=1)] == y_true
    return confidence, correct


def reliability_curve(y_true, proba, classes, *, n_bins=15):
    """Accuracy against confidence of the top label, in equal-width bins.

    Parameters
    ----------
    y_true : array-like of shape (n,)
    proba : array of shape (n, n_classes)
        Predicted probabilities, columns in the order of ``classes``.
    classes : array-like of shape (n_classes,)
    n_bins : int, default=15
        Equal-width bins of the top-label confidence over [0, 1].

    Returns
    -------
    Bunch
        ``edges`` (n_bins + 1), and per bin ``confidence`` (mean top-label
        probability), ``accuracy`` and ``count`` (NaN where a bin is empty).

    Examples
    --------
    >>> import numpy as np
    >>> from leukosk.uncertainty import reliability_curve
    >>> curve = reliability_curve(["a", "b"], np.array([[0.9, 0.1], [0.85, 0.15]]),
    ...                           ["a", "b"], n_bins=5)
    >>> curve.count.tolist(), float(curve.accuracy[-1])
    ([0, 0, 0, 0, 2], 0.5)
    """
    confidence, correct = _top_label(y_true, proba, classes)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore"):
        mean_confidence = np.bincount(which, confidence, n_bins) / count
        accuracy = np.bincount(which, correct.astype(float), n_bins) / count
    return Bunch(edges=edges, confidence=mean_confidence, accuracy=accuracy, count=count)


def expected_calibration_error(y_true, proba, classes, *, n_bins=15):
    """Top-label expected calibration error (ECE), with equal-width bins.

    ``sum_b (n_b / n) |accuracy_b - confidence_b|`` over ``n_bins`` bins of
    the top-label probability (Guo et al. 2017, "On calibration of modern
    neural networks"): 0 for a calibrated model; 0.05 means that, where the
    model says 90 %, it is right about 85 % (or 95 %) of the time.

    Parameters
    ----------
    y_true : array-like of shape (n,)
    proba : array of shape (n, n_classes)
    classes : array-like of shape (n_classes,)
    n_bins : int, default=15

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from leukosk.uncertainty import expected_calibration_error
    >>> proba = np.array([[0.9, 0.1]] * 10)
    >>> y = ["a"] * 9 + ["b"]                       # right 90 % of the time
    >>> round(expected_calibration_error(y, proba, ["a", "b"]), 6)
    0.0
    """
    curve = reliability_curve(y_true, proba, classes, n_bins=n_bins)
    filled = curve.count > 0
    gap = np.abs(curve.accuracy[filled] - curve.confidence[filled])
    return float(np.sum(curve.count[filled] * gap) / curve.count.sum())


def conformalize(estimator, X_calibration, y_calibration, *, confidence_level=0.95,
                 conformity_score="lac"):
    """MAPIE's split-conformal classifier around a fitted ``estimator``.

    ``SplitConformalClassifier(estimator, confidence_level, conformity_score,
    prefit=True).conformalize(X_calibration, y_calibration)``: the returned
    object's ``predict_set(X)`` gives, for each image, the set of classes
    that contains the true one with probability ``confidence_level``
    (marginally, for images like the calibration ones).

    Parameters
    ----------
    estimator : fitted classifier
    X_calibration, y_calibration : labelled images not used in training
    confidence_level : float or list of float, default=0.95
    conformity_score : str, default="lac"
        MAPIE's score; ``"lac"`` gives the smallest sets on average.

    Returns
    -------
    mapie.classification.SplitConformalClassifier
        Its sets' columns are in sorted label order, MAPIE's (that of
        ``estimator.classes_`` when these are sorted).

    Notes
    -----
    MAPIE reads the true class's probability in the column of the label's
    sorted rank; a classifier fitted with ``classes=[...]`` in another order
    is therefore seen through a view whose columns are sorted, so that the
    conformity scores are those of the true classes.
    """
    from mapie.classification import SplitConformalClassifier

    classes = np.asarray(estimator.classes_)
    if not np.array_equal(classes, np.unique(classes)):
        estimator = _SortedColumns(estimator).fit()
    conformal = SplitConformalClassifier(estimator, confidence_level=confidence_level,
                                         conformity_score=conformity_score, prefit=True)
    return conformal.conformalize(X_calibration, y_calibration)


class _SortedColumns(ClassifierMixin, BaseEstimator):
    """A fitted classifier seen with its classes sorted (for MAPIE)."""

    def __init__(self, estimator):
        self.estimator = estimator

    def fit(self, X=None, y=None):
        classes = np.asarray(self.estimator.classes_)
        self.order_ = np.argsort(classes, kind="stable")
        self.classes_ = classes[self.order_]
        return self

    def predict_proba(self, X):
        return np.asarray(self.estimator.predict_proba(X))[:, self.order_]

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class ConformalSets:
    """Prediction sets from stored LAC thresholds, without calibration data.

    The LAC conformity score of a class is ``1 - p(class)``; a set holds the
    classes whose score is at most the threshold ``q`` learnt on a
    calibration split, i.e. whose probability is at least ``1 - q``. The
    thresholds of a MAPIE ``SplitConformalClassifier`` (``conformity_score=
    "lac"``) are read with :meth:`from_mapie`; shipped models store theirs,
    so that ``leukosk count`` can refer cells with no calibration data.

    Parameters
    ----------
    thresholds : dict of float to float
        ``{confidence_level: q}``.

    Examples
    --------
    >>> import numpy as np
    >>> from leukosk.uncertainty import ConformalSets
    >>> sets = ConformalSets({0.95: 0.8}).predict_set(np.array([[0.7, 0.25, 0.05]]), 0.95)
    >>> sets.tolist()
    [[True, True, False]]
    >>> ConformalSets({0.95: 0.8}).threshold(0.95)
    0.8
    """

    def __init__(self, thresholds):
        self.thresholds = {float(k): float(v) for k, v in thresholds.items()}

    @classmethod
    def from_mapie(cls, conformal):
        """The thresholds of a conformalized MAPIE ``SplitConformalClassifier``
        (LAC score)."""
        backend = conformal._mapie_classifier
        score = backend.conformity_score_function_
        if type(score).__name__ != "LACConformityScore":
            raise ValueError("only MAPIE's LAC conformity score is stored as a threshold.")
        alphas = np.asarray(conformal._alphas, dtype=float)
        # what MAPIE's predict_set computes first (its quantiles are lazy)
        quantiles = score.get_conformity_score_quantiles(
            backend.conformity_scores_, alphas, "prefit")
        return cls(dict(zip((1 - alphas).tolist(), np.ravel(quantiles).tolist())))

    def threshold(self, confidence_level=0.95):
        """The stored threshold ``q`` for ``confidence_level``."""
        key = min(self.thresholds, key=lambda level: abs(level - confidence_level))
        if abs(key - confidence_level) > 1e-9:
            raise ValueError(f"no threshold for confidence {confidence_level}; stored: "
                             f"{sorted(self.thresholds)}.")
        return self.thresholds[key]

    def predict_set(self, proba, confidence_level=0.95):
        """Boolean array (n, n_classes): the classes in each image's set."""
        return np.asarray(proba) >= 1 - self.threshold(confidence_level)


def stored_conformal_sets(model="default"):
    """The conformal sets stored with a model, or None if it stores none.

    Shipped models store the LAC thresholds fitted on their calibration
    images (``LeukoskWeights.meta["conformal"]``), so that they can refer
    cells to an expert without calibration data; a saved model stores none:
    make its sets with :func:`conformalize` on labelled images.

    Parameters
    ----------
    model : str, path-like or LeukoskWeights, default="default"
        A model argument, as :func:`leukosk.load_model` takes it:
        ``"default"``, a shipped model or its name, a model folder or file.

    Returns
    -------
    ConformalSets or None

    Raises
    ------
    FileNotFoundError
        ``model`` names no model (:func:`leukosk.resolve_model`).

    Examples
    --------
    >>> from leukosk.uncertainty import stored_conformal_sets
    >>> sorted(stored_conformal_sets("default").thresholds)
    [0.9, 0.95]
    """
    from .classifier._pretrained import resolve_model

    meta = getattr(resolve_model(model), "meta", {})  # a model file: a Path, no meta
    if "conformal" not in meta:
        return None
    return ConformalSets(meta["conformal"]["thresholds"])


def referred(sets):
    """Which cells to refer to an expert: those whose set is not one class.

    A set of two or more classes means the model cannot tell them apart at
    the stated confidence; an empty set means no class is plausible enough
    (an unusual image). Both go to a person.

    Examples
    --------
    >>> import numpy as np
    >>> from leukosk.uncertainty import referred
    >>> referred(np.array([[True, False], [True, True], [False, False]])).tolist()
    [False, True, True]
    """
    return np.asarray(sets).sum(axis=1) != 1
