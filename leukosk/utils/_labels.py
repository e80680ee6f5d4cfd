"""Class labels: checking, learning ``classes_``, encoding to output units."""

import numpy as np
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, column_or_1d

__all__ = ["check_targets", "learn_classes", "encode", "check_same_classes",
           "class_weights", "check_source", "source_class_mask", "source_weights"]


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


def check_source(source, n_samples):
    """``source`` (which training source each image comes from) as an array of
    ``n_samples`` labels, or None."""
    if source is None:
        return None
    source = np.asarray(source)
    if source.shape != (n_samples,):
        raise ValueError(f"source must name one source per image ({n_samples}); "
                         f"got an array of shape {source.shape}.")
    return source


def source_class_mask(source_classes, source, y, classes):
    """Which classes each image may be, shape (n, n_classes), or None.

    ``"present"``: the classes its source has labels for; a dict maps a
    source to its classes (sources not in it may be any class).

    Examples
    --------
    >>> from leukosk.utils._labels import source_class_mask
    >>> source_class_mask("present", ["a", "a", "b"], ["x", "y", "x"], ["x", "y"])
    array([[ True,  True],
           [ True,  True],
           [ True, False]])
    """
    if source_classes is None or source is None:
        return None
    classes = np.asarray(classes)
    y, source = np.asarray(y), np.asarray(source)
    mask = np.ones((len(y), len(classes)), dtype=bool)
    for name in np.unique(source):
        rows = source == name
        if isinstance(source_classes, str):
            allowed = np.unique(y[rows])
        elif name.item() in source_classes:
            allowed = np.asarray(source_classes[name.item()])
        else:
            continue
        unknown = np.setdiff1d(allowed, classes)
        if len(unknown):
            raise ValueError(f"source_classes names {unknown.tolist()} for source "
                             f"{name.item()!r}, which are not among classes_ "
                             f"{classes.tolist()}.")
        outside = np.setdiff1d(y[rows], allowed)
        if len(outside):
            raise ValueError(f"images of source {name.item()!r} are labelled "
                             f"{outside.tolist()}, which source_classes does not "
                             "give that source; add them to its classes.")
        mask[rows] = np.isin(classes, allowed)
    return mask


def source_weights(source_weight, source):
    """Each image's weight so that every source weighs the same in the loss
    (``"balanced"``: ``n / (n_sources * count)``), or None.

    Examples
    --------
    >>> from leukosk.utils._labels import source_weights
    >>> source_weights("balanced", ["a", "a", "a", "b"]).tolist()
    [0.6666666865348816, 0.6666666865348816, 0.6666666865348816, 2.0]
    """
    if source_weight is None or source is None:
        return None
    names, index, counts = np.unique(source, return_inverse=True, return_counts=True)
    return (len(index) / (len(names) * counts[index])).astype(np.float32)
