"""Where and how reproducibly training runs: device choice and seeding."""

import contextlib
import sys

import numpy as np
import torch
from sklearn.utils import check_random_state

__all__ = ["resolve_device", "seeded", "preserved_rng", "live_progress"]


def live_progress(stream=None):
    """Whether a redrawn progress bar can be shown on ``stream`` (stderr).

    True on a terminal and in a Jupyter kernel; False where the output is a
    file, a pipe (``| tee``) or a CI log, which would keep every redrawn
    line: there, progress is one line per epoch (skorch's epoch table).

    Examples
    --------
    >>> import io
    >>> from leukosk._runtime import live_progress
    >>> live_progress(io.StringIO())
    False
    """
    stream = sys.stderr if stream is None else stream
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False
    return stream is sys.stderr and "ipykernel" in sys.modules


def resolve_device(device):
    """Resolve the ``device`` parameter to a concrete torch device string.

    Parameters
    ----------
    device : str, torch.device or None
        ``"auto"`` picks ``"cuda"`` when CUDA is available, else ``"cpu"``.
        Anything else is checked and returned as a string.

    Raises
    ------
    ValueError
        CUDA was requested but this PyTorch build or machine has none.

    Examples
    --------
    >>> from leukosk._runtime import resolve_device
    >>> resolve_device("cpu")
    'cpu'
    """
    if device is None or device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a torch device; use 'auto', 'cpu', "
            "'cuda' or 'cuda:N'.") from exc
    if parsed.type == "cuda":
        _check_cuda(parsed)
    return str(parsed)


def _check_cuda(parsed):
    if not torch.cuda.is_available():
        build = torch.version.cuda
        why = ("this PyTorch build has no CUDA support" if build is None else
               f"no CUDA GPU is visible (PyTorch built for CUDA {build})")
        raise ValueError(
            f"device={str(parsed)!r} was requested but {why}. Use device='auto' "
            "(CUDA when present, else CPU) or device='cpu'; check the GPU with "
            "nvidia-smi and CUDA_VISIBLE_DEVICES.")
    if parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise ValueError(
            f"device={str(parsed)!r} was requested but only "
            f"{torch.cuda.device_count()} CUDA device(s) are visible.")


def _seed_from(random_state):
    if random_state is None:
        return None
    if isinstance(random_state, (int, np.integer)):
        return int(random_state)
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def _forked_devices(device):
    parsed = torch.device(device)
    return [parsed.index or 0] if parsed.type == "cuda" else []


@contextlib.contextmanager
def preserved_rng(device="cpu"):
    """Run a block without changing the caller's torch RNG state.

    torch's ``DataLoader`` draws a base seed from the global RNG for every
    iterator, even for prediction; this keeps that invisible to the caller.

    Examples
    --------
    >>> import torch
    >>> from leukosk._runtime import preserved_rng
    >>> state = torch.get_rng_state()
    >>> with preserved_rng():
    ...     _ = torch.rand(3)
    >>> torch.equal(torch.get_rng_state(), state)
    True
    """
    with torch.random.fork_rng(devices=_forked_devices(device)):
        yield


@contextlib.contextmanager
def seeded(random_state, device="cpu"):
    """Run a block with torch's global RNGs seeded from ``random_state``.

    The caller's RNG state is restored afterwards (``torch.random.fork_rng``),
    so seeding a fit never changes the randomness of the user's other code.
    ``None`` leaves the RNGs alone. Weight initialisation, dropout and the
    data loader's shuffling all draw from these generators, which makes two
    CPU fits with the same ``random_state`` identical.

    Parameters
    ----------
    random_state : None, int or numpy.random.RandomState
    device : str
        The device the block runs on; its CUDA RNG is forked too.

    Yields
    ------
    seed : int or None
    """
    seed = _seed_from(random_state)
    if seed is None:
        yield None
        return
    with preserved_rng(device):
        torch.manual_seed(seed)
        yield seed


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
            getattr(self, attr).load_state_dict(read_state_dict(f_name, use_safetensors))

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


def read_state_dict(f_name, use_safetensors=False):
    """A state dict from a file, on the CPU; never unpickles arbitrary objects.

    Raises
    ------
    ValueError
        The file is not a readable state dict (corrupt, empty, or a pickle of
        something other than tensors), naming the file.
    """
    import pickle

    try:
        if use_safetensors:
            from safetensors.torch import load_file
            return load_file(str(f_name), device="cpu")
        return torch.load(f_name, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ValueError(
            f"cannot read the state in {str(f_name)!r}: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}. "
            "It is damaged, empty, or holds objects other than tensors (which "
            "are refused: loading them could run code).") from exc


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

    from . import __version__

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
