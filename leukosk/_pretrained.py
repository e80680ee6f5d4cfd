"""Trained models shipped inside the package, torchvision-style.

Each member of :class:`LeukoskWeights` names a model file under
``leukosk/pretrained/`` (a file written by
:meth:`VGG19LeukocyteClassifier.save`, float16 tensors) and carries what a
user needs to trust and use it: the file's SHA-256, the class names, the
input size and preprocessing, the network it fits, the recipe that made it,
the data it saw, and its measured accuracy with the machine that measured it
(``member.meta``). Two uses:

* ``load_pretrained()`` returns a fitted classifier, ready to ``predict``;
* ``VGG19LeukocyteClassifier(weights=LeukoskWeights.PBC_...)`` starts a new
  fit from the trained network (its last layer replaced for the new
  classes), for fine-tuning on a lab's own images.
"""

import enum
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LeukoskWeights", "load_pretrained", "ShippedModel"]

_FOLDER = Path(__file__).resolve().parent / "pretrained"


@dataclass(frozen=True)
class ShippedModel:
    """The file of a shipped model and what is known about it.

    Attributes
    ----------
    filename : str
        Name of the file in ``leukosk/pretrained/``.
    sha256 : str
        Its SHA-256, checked before every use.
    meta : dict
        ``classes``, ``image_size``, ``preprocessing``, ``architecture``
        (the classifier parameters that shape the network), ``recipe``,
        ``data``, ``metrics``, ``machine``, ``license``.
    """

    filename: str
    sha256: str
    meta: dict = field(hash=False, compare=False)


class LeukoskWeights(enum.Enum):
    """Models trained by leukosk and shipped with it.

    Members are added as models are trained; ``LeukoskWeights.DEFAULT`` is
    the recommended one. See the model card in the documentation for each
    member's data, recipe, measured accuracy and limits.

    Examples
    --------
    >>> from leukosk import LeukoskWeights
    >>> [member.name for member in LeukoskWeights]
    []
    """

    @property
    def meta(self):
        """What is known about the model (a dict; see :class:`ShippedModel`)."""
        return self.value.meta

    @property
    def sha256(self):
        """The SHA-256 of the model file."""
        return self.value.sha256

    @property
    def path(self):
        """The model file inside the installed package."""
        return _FOLDER / self.value.filename

    def verify(self):
        """Check that the file is there and intact; return its path.

        Raises
        ------
        FileNotFoundError, ValueError
            The file is missing (a broken installation) or altered.
        """
        path = self.path
        if not path.is_file():
            raise FileNotFoundError(
                f"the shipped model file {path} is missing: the leukosk "
                "installation is incomplete. Reinstall leukosk (pip install "
                "--force-reinstall leukosk).")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != self.sha256:
            raise ValueError(
                f"the shipped model file {path} does not match its SHA-256 "
                f"({digest[:12]}... instead of {self.sha256[:12]}...): it was "
                "altered or damaged. Reinstall leukosk.")
        return path

    def get_state_dict(self):
        """The network's tensors (float32, on the CPU), after :meth:`verify`."""
        from safetensors.torch import load_file

        state = load_file(str(self.verify()))
        return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}

    def transforms(self):
        """The preprocessing the model expects, as a dict: ``image_size``,
        ``crop`` (central fraction kept), ``mean`` and ``std``."""
        return dict(self.meta["preprocessing"], image_size=self.meta["image_size"])

    def __str__(self):
        return self.name


def resolve_leukosk_weights(weights):
    """The :class:`LeukoskWeights` member ``weights`` names, or None."""
    if isinstance(weights, LeukoskWeights):
        return weights
    if isinstance(weights, str) and weights in LeukoskWeights.__members__:
        return LeukoskWeights[weights]
    return None


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
    return VGG19LeukocyteClassifier.load(member.verify(), **params)
