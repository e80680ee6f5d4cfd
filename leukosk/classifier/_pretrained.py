"""A fitted classifier from a shipped model, in one call."""

from ..weights._shipped import LeukoskWeights, resolve_leukosk_weights

__all__ = ["load_pretrained"]


def load_pretrained(weights="DEFAULT", **params):
    """A fitted :class:`~leukosk.VGG19LeukocyteClassifier` from a shipped model.

    Works offline, in seconds: the model file is part of the package and is
    checked against its SHA-256 first.

    Parameters
    ----------
    weights : LeukoskWeights or str, default="DEFAULT"
        Which shipped model (a member or its name).
    **params
        Classifier parameters to override, e.g. ``device="cpu"``,
        ``tta=True``, ``batch_size=64``.

    Returns
    -------
    VGG19LeukocyteClassifier
        Fitted: ``predict``, ``predict_proba`` and ``score`` work at once;
        ``partial_fit`` trains it further on the same classes.

    Examples
    --------
    >>> from leukosk import load_pretrained
    >>> load_pretrained("NO_SUCH_MODEL")
    Traceback (most recent call last):
    ...
    ValueError: weights='NO_SUCH_MODEL': not a shipped model; use one of [...].
    """
    from ._classifier import VGG19LeukocyteClassifier

    member = resolve_leukosk_weights(weights)
    if member is None:
        raise ValueError(f"weights={weights!r}: not a shipped model; use one of "
                         f"{list(LeukoskWeights.__members__)}.")
    params.setdefault("verbose", 0)
    clf = VGG19LeukocyteClassifier.load(member.verify(), **params)
    if "lab_shift" in member.meta:
        clf.lab_shift_threshold_ = member.meta["lab_shift"]["threshold"]
    return clf
