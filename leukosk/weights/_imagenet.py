"""Resolving VGG-19 weights: torchvision enums, the torch hub cache, local files.

Three sources, one rule: nothing is ever unpickled beyond tensors
(``torch.load(weights_only=True)`` or safetensors).

* ``"IMAGENET1K_V1"`` or a :class:`torchvision.models.WeightsEnum` member
  uses the torch hub cache as torchvision does: a file at
  ``$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth`` is used without network;
  otherwise it is downloaded there (atomically, its SHA-256 checked against the
  name, with a per-request timeout). Without it and without network,
  :class:`WeightsUnavailableError` says at once what to download, where to put
  it and what else to pass.
* a path to a ``.pth``/``.pt`` or ``.safetensors`` state dict in torchvision's
  VGG-19 layout.
* ``None``: random initialisation.
"""

import contextlib
import os
import pickle
import socket
import tempfile
from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlparse
from urllib.request import Request, urlopen

import torch
from torchvision.models import VGG19_BN_Weights, VGG19_Weights, WeightsEnum

from ..utils._files import (_umask, read_tensors, remove_dead_temps, sha256_file,
                             writer_id)

__all__ = ["WeightsUnavailableError", "resolve_weights", "load_state_dict", "backbone_state",
           "normalization", "weights_cache_path", "implied_settings"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DOWNLOAD_TIMEOUT_S = 20.0


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could not be found in the cache nor downloaded.

    The message names the file, where to put it, and the alternatives
    (``weights=None`` or ``weights="path/to/state_dict.pth"``).
    Set ``LEUKOSK_OFFLINE=1`` to never attempt a download.

    Examples
    --------
    >>> import os, tempfile, unittest.mock
    >>> import numpy as np
    >>> from leukosk import VGG19LeukocyteClassifier, WeightsUnavailableError
    >>> X, y = np.zeros((2, 32, 32, 3), np.uint8), ["basophil", "platelet"]
    >>> with tempfile.TemporaryDirectory() as empty, unittest.mock.patch.dict(
    ...         os.environ, {"TORCH_HOME": empty, "LEUKOSK_OFFLINE": "1"}):
    ...     try:
    ...         VGG19LeukocyteClassifier(verbose=0).fit(X, y)
    ...     except WeightsUnavailableError as exc:
    ...         print("vgg19-dcbb9e9d.pth" in str(exc), "weights=None" in str(exc))
    True True
    """


def _enum_class(batch_norm):
    return VGG19_BN_Weights if batch_norm else VGG19_Weights


def implied_settings(weights):
    """The network settings a choice of weights implies.

    Shipped leukosk models fix the architecture (batch norm, width, pooling,
    hidden units), the input size and the crop they were trained with;
    torchvision's enums fix batch norm; anything else implies VGG-19 at 224
    px. Explicit classifier parameters override these defaults.

    Returns
    -------
    dict
        ``batch_norm`` (bool or None when not implied), ``image_size``,
        ``module`` (keyword arguments for :class:`~leukosk.LeukocyteVGG`).

    Examples
    --------
    >>> from leukosk.weights._imagenet import implied_settings
    >>> implied_settings("IMAGENET1K_V1")
    {'batch_norm': None, 'image_size': 224, 'module': {}}
    """
    from ._shipped import resolve_leukosk_weights

    member = resolve_leukosk_weights(weights)
    if member is not None:
        architecture = member.meta["architecture"]
        return {"batch_norm": architecture["batch_norm"],
                "image_size": member.meta["image_size"],
                "module": dict(architecture["module"])}
    batch_norm = None
    if isinstance(weights, WeightsEnum):
        batch_norm = isinstance(weights, VGG19_BN_Weights)
    return {"batch_norm": batch_norm, "image_size": 224, "module": {}}


def resolve_weights(weights, batch_norm=False):
    """Turn the ``weights`` parameter into an enum member, a Path or None.

    Parameters
    ----------
    weights : None, str, path-like, WeightsEnum or LeukoskWeights
        ``None``; the name of a member of :class:`~torchvision.models.VGG19_Weights`
        (or ``VGG19_BN_Weights`` when ``batch_norm``) such as
        ``"IMAGENET1K_V1"``; an enum member; a shipped
        :class:`~leukosk.LeukoskWeights` member or its name; or a path to a
        local state dict.
    batch_norm : bool, default=False
        Whether the network is VGG-19 with batch normalisation.

    Returns
    -------
    None, WeightsEnum member, LeukoskWeights member or pathlib.Path

    Examples
    --------
    >>> from leukosk.weights._imagenet import resolve_weights
    >>> resolve_weights("IMAGENET1K_V1")
    VGG19_Weights.IMAGENET1K_V1
    >>> resolve_weights(None) is None
    True
    """
    from ._shipped import resolve_leukosk_weights

    if weights is None:
        return None
    shipped = resolve_leukosk_weights(weights)
    if shipped is not None:
        if shipped.meta["architecture"]["batch_norm"] != batch_norm:
            raise ValueError(
                f"weights={shipped} are a VGG-19 "
                f"{'with' if batch_norm is False else 'without'} batch norm; "
                f"leave batch_norm unset (or pass batch_norm="
                f"{shipped.meta['architecture']['batch_norm']}).")
        return shipped
    enum_cls = _enum_class(batch_norm)
    if isinstance(weights, WeightsEnum):
        if not isinstance(weights, enum_cls):
            raise ValueError(
                f"weights={weights!r} are for another architecture; with "
                f"batch_norm={batch_norm} use a member of {enum_cls.__name__}: "
                f"{[m.name for m in enum_cls]}.")
        return weights
    if isinstance(weights, str) and weights in enum_cls.__members__:
        return enum_cls[weights]
    if isinstance(weights, (str, os.PathLike)):
        path = Path(weights)
        if path.is_file():
            return path
        raise ValueError(
            f"weights={str(weights)!r} is neither a {enum_cls.__name__} member "
            f"({', '.join(enum_cls.__members__)}) nor an existing file. Pass "
            "one of those names, a path to a state dict (.pth or .safetensors), "
            "or None for random initialisation.")
    raise TypeError(
        f"weights must be None, a {enum_cls.__name__} member or name, or a "
        f"path; got {type(weights).__name__}.")


def weights_cache_path(enum_member):
    """Where torch hub caches the file of a torchvision weights enum member.

    Honours ``$TORCH_HOME`` (default ``~/.cache/torch``).

    Examples
    --------
    >>> from leukosk.weights._imagenet import resolve_weights, weights_cache_path
    >>> weights_cache_path(resolve_weights("IMAGENET1K_V1")).name
    'vgg19-dcbb9e9d.pth'
    """
    filename = os.path.basename(urlparse(enum_member.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def normalization(weights):
    """Mean and std the images are normalised with (from the weights)."""
    from ..io._model_file import TrainedWeights

    if isinstance(weights, TrainedWeights):
        preprocessing = weights.meta["preprocessing"]
        return tuple(preprocessing["mean"]), tuple(preprocessing["std"])
    if isinstance(weights, WeightsEnum):
        preprocess = weights.transforms()
        return tuple(preprocess.mean), tuple(preprocess.std)
    return IMAGENET_MEAN, IMAGENET_STD


def _download(url, target, progress):
    """Download ``url`` to ``target`` atomically, as torch hub would.

    The timeout is the request's own (``urlopen(timeout=...)``: for the
    connection and each read), never the process-wide socket default, so
    concurrent downloads and other sockets are left alone. The SHA-256 of the
    file must start with the hex digits after the last ``-`` of its name
    (``vgg19-dcbb9e9d.pth``), torch hub's ``check_hash``; the file appears
    under ``target`` only once complete and checked.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    match = torch.hub.HASH_REGEX.search(target.name)
    remove_dead_temps(target.parent, f"{target.name}.")  # killed downloads' partial files
    fd, partial = tempfile.mkstemp(prefix=f"{target.name}.{writer_id()}-", suffix=".partial",
                                   dir=target.parent)
    os.fchmod(fd, 0o666 & ~_umask())  # as torch hub's cache files are, not mkstemp's 0600
    try:
        request = Request(url, headers={"User-Agent": "leukosk"})
        with os.fdopen(fd, "wb") as out, urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as u:
            size = u.headers.get("Content-Length")
            with _progress_bar(progress, int(size) if size else None) as bar:
                while chunk := u.read(1 << 16):
                    out.write(chunk)
                    bar.update(len(chunk))
        digest = sha256_file(partial) if match else None
        if match and not digest.startswith(match.group(1)):
            raise RuntimeError(
                f"invalid hash value of {url} (expected {match.group(1)}..., got "
                f"{digest[:len(match.group(1))]}...): the download is "
                "corrupt or not the expected file.")
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def _progress_bar(progress, total):
    if not progress:
        return contextlib.nullcontext(type("_NoBar", (), {"update": lambda self, n: None})())
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024)


def _unavailable_message(enum_member, reason):
    target = weights_cache_path(enum_member)
    return (
        f"Pretrained weights {type(enum_member).__name__}.{enum_member.name} are "
        f"not in the torch hub cache and could not be downloaded ({reason}).\n"
        f"  Fix: download {enum_member.url}\n"
        f"       and save it as {target}\n"
        f"       (the folder is $TORCH_HOME/hub/checkpoints; TORCH_HOME is "
        f"{os.environ.get('TORCH_HOME', 'unset, so ~/.cache/torch')}).\n"
        "  Or pass weights='path/to/vgg19.pth' (a local state dict), or "
        "weights=None to train from random initialisation.")


def _from_hub(enum_member, progress):
    cached = weights_cache_path(enum_member)
    if not cached.is_file() and os.environ.get("LEUKOSK_OFFLINE"):
        raise WeightsUnavailableError(
            _unavailable_message(enum_member, "LEUKOSK_OFFLINE is set"))
    try:
        if not cached.is_file():
            _download(enum_member.url, cached, progress)
        # from the cache now, with no network: torchvision reads it as ever
        return enum_member.get_state_dict(progress=False, check_hash=True,
                                          weights_only=True, map_location="cpu")
    except (URLError, TimeoutError, ConnectionError, socket.gaierror) as exc:
        raise WeightsUnavailableError(
            _unavailable_message(enum_member, f"{type(exc).__name__}: {exc}")
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError,
            pickle.UnpicklingError) as exc:
        if cached.is_file():
            raise WeightsUnavailableError(
                f"The cached weights file {cached} could not be read ({exc}). "
                "It is probably incomplete or corrupt: delete it and download "
                f"it again from {enum_member.url}.") from exc
        raise WeightsUnavailableError(
            _unavailable_message(enum_member, f"{type(exc).__name__}: {exc}")
        ) from exc


def _from_file(path):
    state = read_tensors(path, what="weights file", fix=(
        "Download or export it again: a plain state dict (a dict of tensors) saved "
        "with torch.save or safetensors."))
    if not isinstance(state, dict) or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(
            f"{str(path)!r} does not hold a state dict (a dict of tensors); "
            "save one with torch.save(model.state_dict(), path).")
    return state


def backbone_state(state):
    """The torchvision VGG-19 part (``backbone.*``) of a leukosk network's state."""
    prefix = "backbone."
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def load_state_dict(weights, progress=False):
    """Load the state dict that ``resolve_weights`` designated (or None).

    Parameters
    ----------
    weights : None, WeightsEnum member or pathlib.Path
        Output of :func:`resolve_weights`.
    progress : bool, default=False
        Show a download progress bar.

    Returns
    -------
    dict of str to torch.Tensor, or None
    """
    from ..io._model_file import TrainedWeights

    if weights is None:
        return None
    if isinstance(weights, TrainedWeights):
        return backbone_state(weights.get_state_dict())
    if isinstance(weights, WeightsEnum):
        return _from_hub(weights, progress)
    return _from_file(weights)
