"""The network's settings and their bounds.

Bounded so that no setting (typed, or read from a model file) allocates
without limit; a model file's settings are checked against its tensors by
:func:`leukosk.nn._vgg.check_network` before anything is allocated.
"""

from numbers import Integral, Real

from sklearn.utils._param_validation import Interval, validate_parameter_constraints

__all__ = ["MODULE_CONSTRAINTS", "check_module_settings"]


#: The network's own settings (``module__*``): what they shape is bounded, so
#: that no setting (typed, or read from a model file) allocates without limit.
MODULE_CONSTRAINTS = {
    "width": [Interval(Real, 0, 8, closed="right")],
    "hidden_units": [Interval(Integral, 1, 65536, closed="both")],
    "pool_size": [Interval(Integral, 1, 32, closed="both")],
    "dropout": [Interval(Real, 0, 1, closed="left")],
    "crop": [Interval(Real, 0, 1, closed="right")],
    "standardize": ["boolean"],
}


def check_module_settings(module, caller_name):
    """Check the network settings in ``module`` (a dict) against their bounds."""
    validate_parameter_constraints(
        {k: MODULE_CONSTRAINTS[k] for k in module if k in MODULE_CONSTRAINTS},
        {k: v for k, v in module.items() if k in MODULE_CONSTRAINTS},
        caller_name=caller_name)


