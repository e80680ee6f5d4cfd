"""A fitted classifier from a shipped model or a saved one, in one call.

:func:`resolve_model` says what a model argument names (a shipped model, a
model folder, a model file), the rule every command and function that takes
a ``model`` shares; :func:`load_model` loads it; :func:`load_pretrained`
loads a shipped one.
"""

import os
from pathlib import Path

from ..weights._shipped import LeukoskWeights, resolve_leukosk_weights

__all__ = ["load_pretrained", "load_model", "resolve_model", "MODEL_FILE"]

#: The model file of a model folder (what ``leukosk train`` writes).
MODEL_FILE = "model.safetensors"


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
        if "unsure_threshold" in member.meta["lab_shift"]:
            clf.lab_shift_unsure_threshold_ = member.meta["lab_shift"]["unsure_threshold"]
    return clf


def resolve_model(model="default"):
    """What a model argument names: a shipped model, or a model file.

    Parameters
    ----------
    model : str, path-like or LeukoskWeights, default="default"
        ``"default"`` (or None) for the recommended shipped model
        (``LeukoskWeights.DEFAULT``); a shipped model or its name; a model
        folder (holding ``model.safetensors``, as ``leukosk train`` writes
        it); or a model file (written by
        :meth:`~leukosk.VGG19LeukocyteClassifier.save`). Names of shipped
        models come first: a folder called ``default`` is named as
        ``./default``.

    Returns
    -------
    LeukoskWeights or pathlib.Path
        The shipped model (never the ``DEFAULT`` alias: the member it
        stands for), or the path of the model file, not yet read.

    Raises
    ------
    FileNotFoundError
        ``model`` is no shipped model's name and no model folder or file.

    See Also
    --------
    load_model : the fitted classifier ``model`` names.

    Examples
    --------
    >>> from leukosk import resolve_model
    >>> resolve_model("default").name
    'PBC_RAABIN_VGG19BN_W375_64PX_CELL_V4'
    >>> resolve_model("no/such/folder")
    Traceback (most recent call last):
    ...
    FileNotFoundError: no model.safetensors in no/such/folder; ...
    """
    if model is None or (isinstance(model, str) and model == "default"):
        model = "DEFAULT"
    if isinstance(model, LeukoskWeights):
        return LeukoskWeights[model.name]
    if isinstance(model, str) and model in LeukoskWeights.__members__:
        return LeukoskWeights[LeukoskWeights[model].name]
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a shipped model, its name, or the path of a "
                        f"model folder or file; got {type(model).__name__}.")
    path = Path(model)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        what = (f"no model file {model}" if Path(model).suffix == ".safetensors"
                else f"no {MODEL_FILE} in {model}")
        raise FileNotFoundError(f"{what}; train one with 'leukosk train DATA_DIR --out "
                                "MODEL_DIR' (or save one with clf.save), or name the "
                                "shipped model: 'default'")
    return path


def load_model(model="default", **params):
    """The fitted classifier a model argument names, ready to predict.

    What ``leukosk predict --model``, ``evaluate``, ``explain`` and
    ``count`` load: a shipped model (checked against its SHA-256, with its
    lab-shift threshold, as :func:`load_pretrained`), or a model folder or
    file (checked as :meth:`~leukosk.VGG19LeukocyteClassifier.load` checks
    it; nothing is unpickled).

    Parameters
    ----------
    model : str, path-like or LeukoskWeights, default="default"
        See :func:`resolve_model`: ``"default"``, a shipped model or its
        name, a model folder, or a model file.
    **params
        Classifier parameters to override, e.g. ``device="cpu"``,
        ``tta=True``; ``verbose`` is 0 unless given.

    Returns
    -------
    VGG19LeukocyteClassifier
        Fitted.

    Raises
    ------
    FileNotFoundError
        No such shipped model, model folder or file.
    ValueError
        The file is not a model written by leukosk, or is damaged.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from leukosk import VGG19LeukocyteClassifier, load_model
    >>> clf = VGG19LeukocyteClassifier(weights=None, image_size=32, max_epochs=1,
    ...     verbose=0, module__width=0.25, module__hidden_units=16).fit(
    ...     np.zeros((4, 32, 32, 3), np.uint8), ["ig", "monocyte"] * 2)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = clf.save(pathlib.Path(d, "model.safetensors"))
    ...     again = load_model(d, device="cpu")       # a model folder
    >>> again.classes_.tolist()
    ['ig', 'monocyte']
    """
    from ._classifier import VGG19LeukocyteClassifier

    source = resolve_model(model)
    params.setdefault("verbose", 0)
    if isinstance(source, LeukoskWeights):
        return load_pretrained(source, **params)
    return VGG19LeukocyteClassifier.load(source, **params)
