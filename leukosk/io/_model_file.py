"""Saving and loading models without pickle, and atomic file writes.

A saved model is one ``.safetensors`` file: the module's tensors, plus JSON
metadata holding the estimator's parameters (augmenters included),
``classes_``, the training history, the leukosk version and a SHA-256 over all
of it. Loading reads tensors and JSON only, so a model file from an untrusted
source cannot run code; a file altered after saving (class names reordered,
settings or weights changed), one with NaN weights, or one from a newer
format is refused with a message saying so.
"""

import hashlib
import json
import math
import os
import re
import warnings
from pathlib import Path

import numpy as np
import torch
from torchvision.models import WeightsEnum

from ..utils._files import atomic_path, read_safetensors_metadata, read_tensors

__all__ = ["TrainedWeights", "ModelFileWeights", "save_model_file", "read_model_file", "read_network",
           "is_model_file", "jsonable", "FORMAT"]

FORMAT = "leukosk-model/1"
_AUGMENTER = "__augmenter__"
#: The most classes a model file may name (ImageNet has 1000).
MAX_CLASSES = 1000


def _augmenter_classes():
    """leukosk's own augmenters by name (a file can only name these)."""
    from ..augmentation import _labshift
    from ..augmentation._augment import BatchAugmentation

    found, todo = {}, [BatchAugmentation]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith("leukosk.") and cls is not BatchAugmentation:
            found[cls.__name__] = cls
    return found


def jsonable(value):
    """``value`` as plain JSON data; ``TypeError`` if it has no such form.

    Weights enums become their name, paths strings, NumPy scalars numbers,
    and leukosk's augmenters ``{"__augmenter__": name, "params": {...}}``.
    """
    from ..augmentation._augment import BatchAugmentation

    if isinstance(value, WeightsEnum):
        return value.name
    if isinstance(value, TrainedWeights):
        return str(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, BatchAugmentation) and type(value).__name__ in _augmenter_classes():
        return {_AUGMENTER: type(value).__name__,
                "params": {k: jsonable(v) for k, v in value.get_params(deep=False).items()}}
    if isinstance(value, (tuple, list)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    json.dumps(value)  # raises TypeError for anything else
    return value


def _from_json(value):
    if isinstance(value, dict) and _AUGMENTER in value:
        classes = _augmenter_classes()
        if value[_AUGMENTER] not in classes:
            raise ValueError(f"unknown augmenter {value[_AUGMENTER]!r}")
        params = {k: _tuples(_from_json(v)) for k, v in value["params"].items()}
        return classes[value[_AUGMENTER]](**params)
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def _tuples(value):
    """JSON has no tuples: an augmenter's list parameters were tuples."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def _config(params):
    config, not_saved = {}, []
    for name, value in params.items():
        if name.startswith("_"):
            continue
        try:
            config[name] = jsonable(value)
        except (TypeError, ValueError):
            not_saved.append(name)
    return config, not_saved


def _encode_classes(classes):
    classes = np.asarray(classes)
    return {"values": classes.tolist(), "dtype": classes.dtype.str}


def _decode_classes(encoded):
    dtype = np.dtype(encoded["dtype"])
    values = encoded["values"]
    if not isinstance(values, list) or dtype.kind not in "OUSiub":
        raise ValueError(f"classes must be a list of names or integers, not "
                         f"{type(values).__name__} of dtype {dtype}")
    if dtype.kind == "O":
        return np.asarray(values, dtype=object)
    try:
        classes = np.asarray(values, dtype=dtype)
    except (OverflowError, ValueError, TypeError):
        classes = None
    if classes is None or classes.tolist() != values:  # 300 as int8, say
        raise ValueError(f"class values {values[:5]} do not fit their dtype {dtype}")
    return classes


def _checked_classes(encoded, state):
    """The classes, checked against the last layer's tensors and bounded."""
    classes = _decode_classes(encoded)
    head = state.get("backbone.classifier.6.weight")
    if classes.ndim != 1 or not 2 <= len(classes) <= MAX_CLASSES:
        raise ValueError(f"{len(classes)} classes: a model has 2 to {MAX_CLASSES}")
    if head is not None and head.shape[0] != len(classes):
        raise ValueError(f"{len(classes)} class names for a last layer of "
                         f"{head.shape[0]} units")
    if len(set(classes.tolist())) != len(classes):
        raise ValueError("a class is named more than once")
    return classes


def _digest(tensors, metadata):
    """SHA-256 over the metadata (but itself) and every tensor's name and bytes."""
    digest = hashlib.sha256(json.dumps(
        {k: v for k, v in metadata.items() if k != "sha256"}, sort_keys=True).encode())
    for name in sorted(tensors):
        tensor = tensors[name].contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_model_file(path, state_dict, params, classes, history, version, network=None,
                    dtype=None):
    """Write tensors and JSON metadata to ``path`` atomically.

    Parameters whose values are not JSON (classes such as the optimizer,
    callbacks) are listed under ``not_saved``; :func:`read_model_file`
    callers use defaults or explicit overrides for them. ``network`` (the
    resolved settings that shape the network, and its preprocessing) lets
    the file serve as starting weights; ``dtype`` stores floating-point
    tensors in another precision (``torch.float16`` halves the file). A
    lab-shift threshold that reading would refuse is refused here, with the
    same check.
    """
    from safetensors.torch import save_file

    problem = _thresholds_problem(network or {})
    if problem is not None:  # refused now, not by the load of the file written
        raise ValueError(f"not saved: {problem} (lab_shift_threshold_, "
                         "lab_shift_unsure_threshold_ or lab_shift_references_); "
                         "calibrate it again (leukosk.domain.calibrate_lab_shift, "
                         "margin > 0; leukosk.domain.fit_lab_references) or delete it.")
    config, not_saved = _config(params)
    metadata = {
        "format": FORMAT,
        "leukosk_version": version,
        "config": json.dumps(config),
        "not_saved": json.dumps(not_saved),
        "classes": json.dumps(_encode_classes(classes)),
        "history": json.dumps(history),
    }
    if network is not None:
        metadata["network"] = json.dumps(jsonable(network))
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    if dtype is not None:
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    metadata["sha256"] = _digest(tensors, metadata)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return not_saved


def _version_tuple(version):
    return tuple(int(p) for p in re.findall(r"\d+", version)[:3])


def _check_integrity(path, state, metadata):
    if metadata.get("format") != FORMAT:
        raise ValueError(
            f"{str(path)!r} is a safetensors file but not a leukosk model "
            f"(format {metadata.get('format')!r}, expected {FORMAT!r}); if it was "
            "made by a newer leukosk, upgrade leukosk.")
    expected = metadata.get("sha256")  # every saved file has one: none is a change
    if not isinstance(expected, str) or _digest(state, metadata) != expected:
        raise ValueError(
            f"{str(path)!r} was altered after it was saved: its checksum is "
            f"{'missing' if expected is None else 'wrong'} (class names, settings or "
            "weights changed). Use the original file, or save the model again.")
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ValueError(
            f"{str(path)!r} holds NaN or infinite weights ({', '.join(bad[:3])}): "
            "the training that made it diverged. Train again with a smaller "
            "learning rate.")
    from .._version import __version__

    made_by = metadata.get("leukosk_version", "0")
    if _version_tuple(made_by)[:2] > _version_tuple(__version__)[:2]:
        warnings.warn(f"{str(path)!r} was saved by leukosk {made_by}, newer than "
                      f"this leukosk {__version__}; upgrade leukosk if loading or "
                      "predicting misbehaves.", UserWarning, stacklevel=4)


def read_network(path):
    """``(classes, network settings or None)`` of a model file, checked."""
    state, _, classes, _, network = read_model_file(path)
    return classes, network, state


def is_model_file(path):
    """Whether ``path`` is a safetensors file with leukosk model metadata."""
    try:
        return read_safetensors_metadata(path).get("format") == FORMAT
    except (OSError, ValueError):
        return False


def read_model_file(path):
    """Read a file written by :func:`save_model_file`.

    Returns
    -------
    state_dict : dict of str to torch.Tensor (on CPU)
    config : dict
    classes : ndarray
    history : list of dict
    network : dict or None
        The network's settings and preprocessing (None in files of older
        leukosk versions), checked against the tensors.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        Not a readable leukosk model file: corrupt, truncated, altered, with
        NaN weights, or of an unknown format (the message says which).
    """
    path = Path(path)
    state, metadata = read_tensors(
        path, safetensors=True, metadata=True, what="model file",
        fix="A model file comes from VGG19LeukocyteClassifier.save().")
    _check_integrity(path, state, metadata)
    try:
        config = json.loads(metadata["config"])
        if not isinstance(config, dict):
            raise TypeError(f"config is a {type(config).__name__}, not a dict")
        config = {k: _from_json(v) for k, v in config.items()}
        classes = _checked_classes(json.loads(metadata["classes"]), state)
        history = json.loads(metadata["history"])
        network = json.loads(metadata["network"]) if "network" in metadata else None
    except (KeyError, ValueError, TypeError, OverflowError, AttributeError) as exc:
        raise ValueError(f"{str(path)!r} has broken model metadata ({exc}); save "
                         "the model again.") from exc
    if network is not None:
        _check_network_fields(path, network)
    return state, config, classes, history, network


class TrainedWeights:
    """Weights of a trained leukosk model: a shipped one or a saved file.

    Subclasses provide ``meta`` (``classes``, ``image_size``,
    ``preprocessing``, ``architecture``) and ``get_state_dict()``; the
    classifier then builds the matching network (see ``implied_settings``)
    and starts its last layer from the units of the classes both share.
    """

    @staticmethod
    def _float32(state):
        """``state`` as the network is built: floating tensors in float32 (a
        file may store float16)."""
        return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


class ModelFileWeights(TrainedWeights):
    """A model file written by ``VGG19LeukocyteClassifier.save``, as weights.

    Parameters
    ----------
    path : path-like
        The ``.safetensors`` model file (checked like ``load`` checks it).

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> from leukosk import VGG19LeukocyteClassifier
    >>> from leukosk.io._model_file import ModelFileWeights
    >>> X = np.zeros((4, 32, 32, 3), np.uint8)
    >>> clf = VGG19LeukocyteClassifier(weights=None, image_size=32, max_epochs=1,
    ...     verbose=0, module__width=0.25, module__hidden_units=16).fit(X, [0, 1, 0, 1])
    >>> with tempfile.TemporaryDirectory() as d:
    ...     weights = ModelFileWeights(clf.save(pathlib.Path(d, "m.safetensors")))
    ...     weights.meta["image_size"], weights.meta["classes"]
    (32, ('0', '1'))
    """

    def __init__(self, path):
        classes, network, _ = read_network(path)  # checked; its tensors are let go
        if network is None:
            raise ValueError(f"{str(path)!r} was saved by an older leukosk without its "
                             "network settings; load it and save it again.")
        self.path = Path(path)
        self.name = str(path)
        self.network = network
        self.meta = {
            "classes": tuple(str(c) for c in classes),
            "image_size": network["image_size"],
            "preprocessing": {k: network["preprocessing"][k] for k in ("crop", "mean", "std")},
            "architecture": {"batch_norm": network["batch_norm"],
                             "module": dict(network["module"])},
        }

    def get_state_dict(self):
        """The network's tensors (float32, on the CPU), read from the file.

        Read afresh at each call and never kept, so that a cached
        ``ModelFileWeights`` (one per file version) holds no tensors; a file
        that changed since is refused.
        """
        classes, network, state = read_network(self.path)
        if network != self.network or tuple(str(c) for c in classes) != \
                self.meta["classes"]:
            raise ValueError(f"{self.name!r} changed since it was read; resolve the "
                             "weights again.")
        return self._float32(state)

    def __str__(self):
        return self.name


#: The lab-shift thresholds a model file may carry in its network settings.
LAB_SHIFT_FIELDS = ("lab_shift_threshold", "lab_shift_unsure_threshold")


def _thresholds_problem(network):
    """What is wrong with the lab-shift thresholds and references of
    ``network`` (None: nothing)."""
    for name in LAB_SHIFT_FIELDS:
        problem = _threshold_problem(network.get(name), name)
        if problem is not None:
            return problem
    return _references_problem(network.get("lab_shift_references"))


def _references_problem(references):
    """What is wrong with per-lab reference statistics (None: nothing, or
    none given): lab name -> per layer a pair of equal-length lists, the
    channels' means (finite) and variances (finite, positive)."""
    if references is None:
        return None
    if not isinstance(references, dict) or not references:
        return "lab_shift_references is not a non-empty mapping of lab names"
    for name, layers in references.items():
        if not isinstance(layers, (list, tuple)) or not layers or not all(
                _moments_ok(layer) for layer in layers):
            return (f"lab_shift_references[{name!r}] is not, per layer, a channel "
                    "mean and a positive variance of equal lengths")
    return None


def _moments_ok(layer):
    if not isinstance(layer, (list, tuple)) or len(layer) != 2:
        return False
    mean, var = layer
    if not (isinstance(mean, list) and isinstance(var, list) and mean
            and len(mean) == len(var)):
        return False
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool)
                  and math.isfinite(v) for v in mean + var)
    return numbers and min(var) > 0


def _threshold_problem(threshold, name="lab_shift_threshold"):
    """What is wrong with a lab-shift threshold (None: nothing, or none
    given): the one check of :func:`save_model_file` and of reading."""
    if threshold is None or (not isinstance(threshold, bool) and isinstance(
            threshold, (int, float)) and 0 <= threshold < math.inf):
        return None
    return f"{name}={threshold!r} is not a finite, non-negative number"


def _check_network_fields(path, network):
    """The file's ``network`` metadata has the fields of the format, typed.

    The settings' bounds and their match with the tensors are the network's
    to check (:func:`leukosk.nn._vgg.check_network_metadata`), before it is built.
    """
    if not isinstance(network, dict) or not isinstance(network.get("module"), dict) \
            or not all(k in network for k in ("batch_norm", "image_size")):
        problem = "the network settings lack fields of the format"
    else:
        problem = _thresholds_problem(network)
    if problem is None:
        return
    raise ValueError(f"{str(path)!r} has broken network settings ({problem}); the "
                     "file is damaged or crafted: use the original.")
