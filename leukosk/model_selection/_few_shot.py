"""Measuring a model on another lab's images: out of the box, and after k-shot adaptation."""

import numpy as np
from sklearn.base import clone
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.utils import Bunch, check_random_state
from sklearn.utils.validation import column_or_1d

from ..utils._images import take_images

__all__ = ["score_present_classes", "few_shot_scores", "held_back_gain"]


def score_present_classes(estimator, X, y):
    """Accuracy on another lab's images, choosing only among the classes they contain.

    Another lab's set often holds fewer classes than the model knows (five of
    PBC's eight, say). The prediction for each image is the most probable of
    the classes present in ``y``, as if the model had been told which cell
    types to expect; labels of ``y`` the model does not know are an error.

    Parameters
    ----------
    estimator : fitted classifier with ``predict_proba`` and ``classes_``
    X : images or paths
    y : array-like of shape (n,)

    Returns
    -------
    Bunch
        ``accuracy``, ``balanced_accuracy``, ``y_pred``, ``classes`` (those
        present).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.dummy import DummyClassifier
    >>> from leukosk.model_selection import score_present_classes
    >>> model = DummyClassifier(strategy="prior").fit(np.zeros((4, 1)), ["a", "b", "b", "c"])
    >>> score_present_classes(model, np.zeros((2, 1)), ["a", "c"]).accuracy
    0.5
    """
    y = column_or_1d(y)
    known = list(np.asarray(estimator.classes_).tolist())
    present = sorted(set(y.tolist()), key=known.index) if set(y.tolist()) <= set(known) \
        else None
    if present is None:
        raise ValueError(f"y has labels the model does not know: "
                         f"{sorted(set(map(str, y.tolist())) - set(map(str, known)))}.")
    columns = [known.index(c) for c in present]
    proba = estimator.predict_proba(X)[:, columns]
    y_pred = np.asarray(present, dtype=object)[proba.argmax(axis=1)].astype(y.dtype)
    return Bunch(accuracy=accuracy_score(y, y_pred),
                 balanced_accuracy=balanced_accuracy_score(y, y_pred),
                 y_pred=y_pred, classes=np.asarray(present))


def _draw(y, k, rng):
    """k training indices per class (fewer where a class has fewer; one image
    of each class is always left for testing)."""
    train = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        take = min(k, len(members) - 1)
        train.extend(rng.choice(members, size=take, replace=False).tolist())
    train = np.sort(np.asarray(train, dtype=int))
    return train, np.setdiff1d(np.arange(len(y)), train)


def few_shot_scores(estimator, X, y, *, k=10, n_draws=5, random_state=None):
    """The k-shot protocol: fit on k labelled images per class, score on the rest.

    For each of ``n_draws`` random draws: ``k`` images of each class of ``y``
    (fewer where a class has fewer; one is always left for testing) train a
    clone of ``estimator``, which is then scored on every other image.
    ``estimator`` is typically a classifier starting from a trained model
    (``weights=LeukoskWeights.DEFAULT`` or a saved model file, see
    :func:`leukosk.protocols.few_shot_classifier`); its ``classes`` parameter, if
    unset, is set to every label of ``y``, so that a class with too few
    images to train on can still be predicted from the trained model.

    Parameters
    ----------
    estimator : unfitted classifier
    X : ndarray of images or list of paths
    y : array-like of shape (n,)
    k : int, default=10
    n_draws : int, default=5
    random_state : None, int or RandomState, default=None

    Returns
    -------
    Bunch
        ``accuracy`` and ``balanced_accuracy`` (arrays of ``n_draws``), their
        ``*_mean`` and ``*_std``, ``n_train`` and ``n_test`` per draw.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.neighbors import KNeighborsClassifier
    >>> from leukosk.model_selection import few_shot_scores
    >>> X = np.r_[np.zeros((20, 1)), np.ones((20, 1))]
    >>> y = np.repeat(["a", "b"], 20)
    >>> scores = few_shot_scores(KNeighborsClassifier(1), X, y, k=3, n_draws=2, random_state=0)
    >>> scores.accuracy_mean, scores.n_train.tolist()
    (1.0, [6, 6])
    """
    y = column_or_1d(y)
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k={k!r}: a positive number of images per class.")
    if not isinstance(n_draws, (int, np.integer)) or n_draws < 1:
        raise ValueError(f"n_draws={n_draws!r}: a positive number of draws.")
    _check_trainable(y)
    rng = check_random_state(random_state)
    scores = {"accuracy": [], "balanced_accuracy": [], "n_train": [], "n_test": []}
    for _ in range(n_draws):
        train, test = _draw(y, k, rng)
        model = clone(estimator)
        if "classes" in model.get_params() and model.get_params()["classes"] is None:
            model.set_params(classes=np.unique(y))
        model.fit(take_images(X, train), y[train])
        y_pred = model.predict(take_images(X, test))
        scores["accuracy"].append(accuracy_score(y[test], y_pred))
        scores["balanced_accuracy"].append(balanced_accuracy_score(y[test], y_pred))
        scores["n_train"].append(len(train))
        scores["n_test"].append(len(test))
    out = Bunch(**{key: np.asarray(value) for key, value in scores.items()})
    for key in ("accuracy", "balanced_accuracy"):
        out[f"{key}_mean"] = float(out[key].mean())
        out[f"{key}_std"] = float(out[key].std(ddof=1)) if n_draws > 1 else 0.0
    return out


def held_back_gain(start, estimator, X, y, *, n_splits=3, random_state=0):
    """Whether fitting ``estimator`` on labelled cells beats ``start`` on
    cells it did not see: stratified ``n_splits``-fold cross-validation.

    Each fold fits a clone of ``estimator`` on the other folds and compares
    its predictions on the fold with those of ``start`` (the model it would
    replace, already fitted). Cells of classes with fewer than ``n_splits``
    cells are never held back (they always train).

    Parameters
    ----------
    start : fitted classifier
    estimator : unfitted classifier
    X : ndarray of images or list of paths
    y : array-like of shape (n,)
    n_splits : int, default=3
    random_state : None or int, default=0

    Returns
    -------
    Bunch or None
        ``n`` (cells held back, each once), ``start_correct`` and
        ``adapted_correct`` (how many each got right), ``start_accuracy``,
        ``adapted_accuracy``; None where no class has ``n_splits`` cells.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.dummy import DummyClassifier
    >>> from sklearn.neighbors import KNeighborsClassifier
    >>> from leukosk.model_selection import held_back_gain
    >>> X, y = np.r_[np.zeros((6, 1)), np.ones((6, 1))], np.repeat(["a", "b"], 6)
    >>> start = DummyClassifier(strategy="constant", constant="a").fit(X, y)
    >>> gain = held_back_gain(start, KNeighborsClassifier(1), X, y)
    >>> gain.start_correct, gain.adapted_correct, gain.n
    (6, 12, 12)
    """
    from sklearn.model_selection import StratifiedKFold

    y = column_or_1d(y)
    labels, counts = np.unique(y, return_counts=True)
    eligible = np.flatnonzero(np.isin(y, labels[counts >= n_splits]))
    if len(eligible) == 0:
        return None
    always = np.setdiff1d(np.arange(len(y)), eligible)
    start_pred = start.predict(take_images(X, eligible))
    folds = StratifiedKFold(n_splits, shuffle=True, random_state=random_state)
    adapted_pred = np.empty(len(eligible), dtype=object)
    for train, test in folds.split(eligible, y[eligible]):
        rows = np.sort(np.r_[eligible[train], always]).astype(int)
        model = clone(estimator).fit(take_images(X, rows), y[rows])
        adapted_pred[test] = model.predict(take_images(X, eligible[test]))
    truth = y[eligible]
    start_correct = int(np.sum(start_pred.astype(str) == truth.astype(str)))
    adapted_correct = int(np.sum(adapted_pred.astype(str) == truth.astype(str)))
    n = len(eligible)
    return Bunch(n=n, start_correct=start_correct, adapted_correct=adapted_correct,
                 start_accuracy=start_correct / n, adapted_accuracy=adapted_correct / n)


def _check_trainable(y):
    """Some class must have two images: one to train on, one to test."""
    labels, counts = np.unique(y, return_counts=True)
    if len(labels) == 0 or counts.max() < 2:
        raise ValueError(
            f"every class of y has a single image ({len(labels)} classes, "
            f"{len(y)} images): k-shot scoring trains on some images of a class "
            "and tests on the others, so a class needs at least two. Add images.")
