"""The classifier's parameters: one table of constraints, checked once.

In the spirit of scikit-learn's ``_parameter_constraints``: every parameter of
:class:`~leukosk.VGG19LeukocyteClassifier` that leukosk itself interprets is
listed here with the values it accepts, and
:func:`validate_classifier_params` checks them all when the network is
initialised (at the start of ``fit``), with scikit-learn's messages. skorch's
own parameters (``optimizer``, ``callbacks``, ``iterator_*``, ...) are checked
by skorch.
"""

import os
from numbers import Integral, Real

from sklearn.utils._param_validation import (Interval, Options, StrOptions,
                                             validate_parameter_constraints)

from ..nn._settings import MODULE_CONSTRAINTS

__all__ = ["CLASSIFIER_CONSTRAINTS", "validate_classifier_params"]


CLASSIFIER_CONSTRAINTS = {
    "weights": [str, os.PathLike, "weights_enum", None],
    "batch_norm": ["boolean", None],
    "image_size": [Interval(Integral, 32, 4096, closed="both"), None],
    "head_lr_multiplier": [Interval(Real, 0, None, closed="left")],
    "freeze_features": ["boolean"],
    "augment": [None, "augmenter"],
    "tta": ["boolean"],
    "validation": [None, Interval(Real, 0, 1, closed="neither"), tuple, list],
    "class_weight": [None, StrOptions({"balanced"}), dict],
    "source_classes": [None, StrOptions({"present"}), dict],
    "source_weight": [None, StrOptions({"balanced"})],
    "random_state": ["random_state"],
    "checkpoint_dir": [None, str, os.PathLike],
    "resume": ["boolean"],
    "device": [str, None, "torch_device"],
    "amp": ["boolean", StrOptions({"bfloat16", "bf16", "float16", "fp16", "half"})],
    "channels_last": ["boolean"],
    "data_on_device": ["boolean", StrOptions({"auto"})],
    "lr": [Interval(Real, 0, None, closed="left")],
    "max_epochs": [Interval(Integral, 0, None, closed="left")],
    "batch_size": [Interval(Integral, 1, None, closed="left"),
                   Options(Integral, {-1})],  # -1: one batch of everything
}


def _resolve(constraint):
    """Our named constraints as scikit-learn constraint objects (types)."""
    if constraint == "weights_enum":
        from torchvision.models import WeightsEnum

        from ..io._model_file import TrainedWeights
        return (WeightsEnum, TrainedWeights)
    if constraint == "augmenter":
        from ..augmentation._augment import BatchAugmentation
        return BatchAugmentation
    if constraint == "torch_device":
        import torch
        return torch.device
    return constraint


def _flatten(constraints):
    out = []
    for constraint in constraints:
        resolved = _resolve(constraint)
        out.extend(resolved if isinstance(resolved, tuple) else [resolved])
    return out


def validate_classifier_params(estimator):
    """Check ``estimator``'s leukosk parameters against the table.

    Raises
    ------
    sklearn.utils._param_validation.InvalidParameterError
        A ``ValueError`` (and ``TypeError``) naming the parameter, what it
        accepts and what it got; plus the cross-parameter rules below.
    """
    table = {name: _flatten(c) for name, c in CLASSIFIER_CONSTRAINTS.items()}
    given = estimator.get_params(deep=False)
    params = {name: given[name] for name in table}
    validate_parameter_constraints(table, params, caller_name=type(estimator).__name__)
    module = {name: value for name, value in estimator.get_params_for("module").items()
              if name in MODULE_CONSTRAINTS}
    validate_parameter_constraints({f"module__{k}": MODULE_CONSTRAINTS[k] for k in module},
                                   {f"module__{k}": v for k, v in module.items()},
                                   caller_name=type(estimator).__name__)
    if estimator.resume and estimator.checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir=<folder> to resume from.")
    if estimator.validation is not None and estimator.train_split is not None:
        raise ValueError("set either validation=... or skorch's train_split=..., "
                         "not both.")
    if isinstance(estimator.validation, (tuple, list)) and len(estimator.validation) != 2:
        raise ValueError("validation must be None, a fraction, or a pair "
                         f"(X_val, y_val); got a sequence of {len(estimator.validation)}.")
