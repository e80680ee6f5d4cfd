"""Where an estimator lives: the device parameter, loading and unpickling."""

from ..utils._files import read_tensors
from ..utils._runtime import resolve_device

__all__ = ["DevicePlacement", "resolve_device_for_loading", "warn_other_versions"]


class DevicePlacement:
    """skorch's device handling for a ``device`` parameter that may be ``"auto"``.

    skorch and its callbacks move modules and tensors with ``net.device``,
    which must be a torch device; the constructor parameter here may be
    ``"auto"``. The parameter is stored as given (``get_params``,
    ``set_params`` and ``clone`` see it unchanged) and resolved once, when the
    net is initialised, into the fitted attribute ``device_``; reading
    ``net.device`` returns that concrete device. Nothing is rewritten around
    ``fit`` or ``predict``, so concurrent predictions share nothing mutable.
    """

    @property
    def device(self):
        """The concrete torch device: ``device_`` once initialised, else the
        ``device`` parameter resolved now (read by skorch)."""
        resolved = vars(self).get("device_")
        return resolved if resolved is not None else resolve_device(self._device_param)

    @device.setter
    def device(self, value):
        self._device_param = value

    def get_params(self, deep=True):
        """Parameters as given (``device`` may be ``"auto"``); see skorch."""
        # ``device`` is not among the attribute names skorch lists (it is a
        # property), so reading the others never resolves it.
        return {**super().get_params(deep=deep), "device": self._device_param}

    def _resolve_runtime(self):
        """Set ``device_`` from the ``device`` parameter (at initialisation)."""
        self.device_ = resolve_device(self._device_param)

    def load_params(self, f_params=None, f_optimizer=None, f_criterion=None,
                    f_history=None, checkpoint=None, use_safetensors=False,
                    **kwargs):
        """skorch's ``load_params``: tensors are read onto the CPU (never
        unpickled: ``weights_only=True``) and copied into the initialised
        module and optimizer on ``device_``; ``device`` stays as it was."""
        from skorch.history import History
        from skorch.utils import _check_f_arguments

        files = {} if checkpoint is None else checkpoint.get_formatted_files(self)
        if checkpoint is not None and not self.initialized_:
            self.initialize()
        files.update(kwargs)
        for key, value in [("f_params", f_params), ("f_optimizer", f_optimizer),
                           ("f_criterion", f_criterion), ("f_history", f_history)]:
            if value:
                files[key] = value
        modules, other = _check_f_arguments("load_params", **files)
        if other.get("f_history") is not None:
            self.history = History.from_file(other["f_history"])
        for attr, f_name in modules.items():
            self.check_is_fitted([attr])
            getattr(self, attr).load_state_dict(read_tensors(
                f_name, safetensors=use_safetensors, what="state file",
                fix="Save it again with save_params()."))

    def __getstate__(self):
        state = super().__getstate__()
        state["device"] = state.pop("_device_param")
        return state

    def __setstate__(self, state):
        """Unpickle on this machine: ``"auto"`` resolves here, and CUDA
        tensors come to the CPU where there is no GPU (skorch's rule)."""
        requested = state["device"]
        state = dict(state, device=resolve_device_for_loading(requested))
        super().__setstate__(state)
        landed = vars(self).pop("device")  # skorch's choice of device
        if "device_" in vars(self):
            self.device_ = landed
        self._device_param = requested if requested in ("auto", None) else landed


def resolve_device_for_loading(device):
    """The device a pickled estimator's tensors go to on this machine.

    ``"auto"`` (or None) resolves here; an explicit device is left to skorch,
    which falls back to the CPU with a warning where CUDA is missing.
    """
    return resolve_device(device) if device in ("auto", None) else device


def warn_other_versions(state, name):
    """Warn when a pickle comes from another scikit-learn or leukosk version,
    as scikit-learn's own estimators do."""
    import warnings

    from sklearn import __version__ as sklearn_version
    from sklearn.exceptions import InconsistentVersionWarning

    from .._version import __version__

    pickled = state.pop("_sklearn_version", None)
    if pickled is not None and pickled != sklearn_version:
        warnings.warn(InconsistentVersionWarning(
            estimator_name=name, current_sklearn_version=sklearn_version,
            original_sklearn_version=pickled), stacklevel=3)
    made_by = state.pop("_leukosk_version", None)
    if made_by is not None and made_by != __version__:
        warnings.warn(f"this {name} was pickled by leukosk {made_by} and is "
                      f"loaded by leukosk {__version__}; pickles are not "
                      "guaranteed across versions: use save()/load() to keep "
                      "models.", UserWarning, stacklevel=3)
