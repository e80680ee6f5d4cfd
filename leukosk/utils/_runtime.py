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
    >>> from leukosk.utils._runtime import live_progress
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
    >>> from leukosk.utils._runtime import resolve_device
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
    elif parsed.type != "cpu":
        _check_other(parsed)
    return str(parsed)


def _check_other(parsed):
    """A device type other than CPU and CUDA (``mps``, ``xpu``, ...) must work here."""
    try:
        torch.empty(0, device=parsed)
    except (RuntimeError, AssertionError) as exc:
        raise ValueError(
            f"device={str(parsed)!r} was requested but this PyTorch or machine "
            f"cannot use it ({_first_sentence(exc)}). Use device='auto' (CUDA when "
            "present, else CPU) or device='cpu'.") from None


def _first_sentence(exc, limit=120):
    text = (str(exc).splitlines() or [""])[0].split(". ")[0].rstrip(".")
    return (text[:limit] + "...") if len(text) > limit else (text or type(exc).__name__)


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
    >>> from leukosk.utils._runtime import preserved_rng
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


