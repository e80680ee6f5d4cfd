"""Class labels: checking, learning ``classes_``, encoding to output units."""

import numpy as np
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, column_or_1d

__all__ = ["check_targets", "learn_classes", "encode", "check_same_classes",
           "class_weights"]


def check_targets(y, n_samples):
    """``y`` as a checked 1-D array of ``n_samples`` class labels."""
    if y is None:
        raise ValueError("y is required: pass the class label of each image.")
    y = column_or_1d(y, warn=True)
    check_consistent_length(np.empty(n_samples), y)
    check_classification_targets(y)
    return y


def learn_classes(y, classes=None):
    """The classes: ``classes`` in the order given, else the labels of ``y``
    sorted (:func:`numpy.unique`); at least two, none repeated.

    The order is that of the network's output units and of the columns of
    ``predict_proba``: find a label's column with :func:`encode`, never by
    assuming the classes sorted."""
    classes = np.unique(y) if classes is None else np.asarray(classes)
    repeated = sorted({str(c) for c in classes.tolist() if classes.tolist().count(c) > 1})
    if repeated:
        raise ValueError(f"classes names {repeated} more than once; each class must "
                         "appear once (its share would be counted twice).")
    if len(classes) < 2:
        raise ValueError(
            f"y has a single class ({classes.tolist()[0]!r}); a classifier needs at "
            "least two. Check that the labels were read correctly.")
    return classes


def encode(y, classes, what="y"):
    """Indices of ``y``'s labels in ``classes`` (their columns in
    ``predict_proba``, whatever the order of ``classes``); unknown labels are
    an error."""
    index = {label: i for i, label in enumerate(np.asarray(classes).tolist())}
    unknown = sorted({str(v) for v in np.asarray(y).tolist() if v not in index})
    if unknown:
        raise ValueError(
            f"{what} contain(s) label(s) {unknown[:10]} that the classifier "
            f"does not know; known classes_ are {list(index)}. Check spelling "
            "and case, or refit with all classes (or pass classes=[...]).")
    return np.fromiter((index[v] for v in np.asarray(y).tolist()), dtype=np.int64,
                       count=len(y))


def check_same_classes(fitted, y):
    """For ``warm_start`` and ``partial_fit``: ``y`` may only use labels the
    network has output units for."""
    known = set(np.asarray(fitted).tolist())
    new = sorted({str(v) for v in np.asarray(y).tolist() if v not in known})
    if new:
        raise ValueError(
            f"warm_start=True continues training a network with {len(fitted)} "
            f"output units for classes_ {np.asarray(fitted).tolist()}, but y has "
            f"the new label(s) {new[:10]}. Fit with warm_start=False to start "
            "again, or pass classes=[...] naming every label at the first fit.")


def class_weights(class_weight, classes, y):
    """The weight of each class in the loss (``class_weight_``), or None.

    ``"balanced"`` is scikit-learn's ``n_samples / (n_classes * count)`` over
    the classes present in ``y`` (absent ones weigh 1); a dict maps labels to
    weights (missing labels weigh 1).
    """
    from sklearn.utils.class_weight import compute_class_weight

    if class_weight is None:
        return None
    if isinstance(class_weight, str):
        encoded = encode(y, classes)
        present = np.unique(encoded)
        weights = np.ones(len(classes))
        weights[present] = compute_class_weight("balanced", classes=present, y=encoded)
        return weights
    return np.array([float(class_weight.get(c, 1.0)) for c in np.asarray(classes).tolist()])
