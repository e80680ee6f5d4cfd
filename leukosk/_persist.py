"""Saving and loading models without pickle, and atomic file writes.

A saved model is one ``.safetensors`` file: the module's tensors, plus JSON
metadata holding the estimator's parameters, ``classes_``, the training history
and the leukosk version. Loading reads tensors and JSON only, so a model file
from an untrusted source cannot run code.
"""

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from torchvision.models import WeightsEnum

__all__ = ["atomic_path", "save_model_file", "read_model_file", "FORMAT"]

FORMAT = "leukosk-model/1"


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; move it into place on success.

    The temporary file is in the same folder (same filesystem), so the final
    :func:`os.replace` is atomic: readers see the old file or the new one,
    never a half-written one, and a crash leaves the old file intact.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from leukosk._persist import atomic_path
    >>> with tempfile.TemporaryDirectory() as d:
    ...     target = pathlib.Path(d, "out.txt")
    ...     with atomic_path(target) as tmp:
    ...         _ = tmp.write_text("done")
    ...     target.read_text()
    'done'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                               suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _jsonable(value):
    if isinstance(value, WeightsEnum):
        return value.name
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.generic):
        return value.item()
    json.dumps(value)  # raises TypeError for anything else
    return value


def _config(params):
    config, not_saved = {}, []
    for name, value in params.items():
        if name.startswith("_"):
            continue
        try:
            config[name] = _jsonable(value)
        except (TypeError, ValueError):
            not_saved.append(name)
    return config, not_saved


def _encode_classes(classes):
    classes = np.asarray(classes)
    return {"values": classes.tolist(), "dtype": classes.dtype.str}


def _decode_classes(encoded):
    dtype = np.dtype(encoded["dtype"])
    if dtype.kind == "O":
        return np.asarray(encoded["values"], dtype=object)
    return np.asarray(encoded["values"], dtype=dtype)


def save_model_file(path, state_dict, params, classes, history, version):
    """Write tensors and JSON metadata to ``path`` atomically.

    Parameters whose values are not JSON (classes such as the optimizer,
    callbacks) are listed under ``not_saved``; :func:`read_model_file`
    callers use defaults or explicit overrides for them.
    """
    from safetensors.torch import save_file

    config, not_saved = _config(params)
    metadata = {
        "format": FORMAT,
        "leukosk_version": version,
        "config": json.dumps(config),
        "not_saved": json.dumps(not_saved),
        "classes": json.dumps(_encode_classes(classes)),
        "history": json.dumps(history),
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return not_saved


def read_model_file(path):
    """Read a file written by :func:`save_model_file`.

    Returns
    -------
    state_dict : dict of str to torch.Tensor (on CPU)
    config : dict
    classes : ndarray
    history : list of dict
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {str(path)!r}.")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(
            f"{str(path)!r} is not a readable safetensors model file ({exc}); "
            "it should come from VGG19LeukocyteClassifier.save().") from exc
    if metadata.get("format") != FORMAT:
        raise ValueError(
            f"{str(path)!r} is a safetensors file but not a leukosk model "
            f"(format {metadata.get('format')!r}, expected {FORMAT!r}).")
    return (state, json.loads(metadata["config"]),
            _decode_classes(json.loads(metadata["classes"])),
            json.loads(metadata["history"]))

