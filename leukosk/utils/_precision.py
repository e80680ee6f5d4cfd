"""Mixed precision: which ``amp`` settings are valid, and the autocast block.

Only bfloat16 is offered. It has float32's exponent range, so training needs
no loss scaling, and it is what current GPUs (Ampere and newer) and CPUs with
AVX512-BF16/AMX run fastest. float16 would need a gradient scaler around
skorch's optimizer step and is deliberately not offered.
"""

import contextlib
import functools
import warnings

import torch

__all__ = ["amp_dtype", "autocast"]

_BF16_NAMES = (True, "bfloat16", "bf16")


def amp_dtype(amp, device):
    """The autocast dtype for the ``amp`` parameter on ``device`` (or None).

    Parameters
    ----------
    amp : bool or str
        ``False``/``None``: full float32. ``True``, ``"bfloat16"`` or
        ``"bf16"``: bfloat16 autocast.
    device : str
        A concrete torch device string (``"cpu"``, ``"cuda:0"``, ...).

    Returns
    -------
    torch.dtype or None

    Raises
    ------
    ValueError
        Unknown setting, or a GPU without bfloat16 support.

    Examples
    --------
    >>> from leukosk.utils._precision import amp_dtype
    >>> amp_dtype(True, "cpu")
    torch.bfloat16
    >>> amp_dtype(False, "cpu") is None
    True
    """
    if amp is None or amp is False:
        return None
    if isinstance(amp, str) and amp.lower() in ("float16", "fp16", "half"):
        raise ValueError(
            f"amp={amp!r}: float16 needs gradient scaling and is not offered; "
            "use amp='bfloat16' (same speed on Ampere or newer GPUs and on "
            "CPUs with AVX512-BF16/AMX, no scaling needed) or amp=False.")
    if not any(amp is v or (isinstance(amp, str) and amp.lower() == v)
               for v in _BF16_NAMES):
        raise ValueError(f"amp={amp!r}: use False, True or 'bfloat16'.")
    if torch.device(device).type == "cuda" and not _gpu_has_bf16(torch.device(device).index):
        raise ValueError(
            f"amp={amp!r}: this GPU ({torch.cuda.get_device_name()}) has no "
            "bfloat16 support (it needs compute capability 8.0, Ampere, or "
            "newer); use amp=False.")
    if torch.device(device).type == "cpu" and not cpu_has_bf16():
        warnings.warn(
            f"amp={amp!r} on this CPU ({torch.backends.cpu.get_cpu_capability()}, "
            "without AVX512-BF16 or AMX) emulates bfloat16: training was 13x "
            "slower than float32 on such a CPU. Use amp=False here.",
            UserWarning, stacklevel=3)
    return torch.bfloat16


@functools.lru_cache(maxsize=None)
def cpu_has_bf16():
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@functools.lru_cache(maxsize=None)
def _gpu_has_bf16(index):
    """Asked once per GPU and process (``amp_dtype`` runs each time a network
    is initialised, into ``amp_dtype_``; batches only read that)."""
    with torch.cuda.device(index or 0):
        return torch.cuda.is_bf16_supported()


def autocast(device, dtype):
    """Autocast block for ``dtype`` on ``device``; a no-op for ``None``.

    Examples
    --------
    >>> import torch
    >>> from leukosk.utils._precision import autocast
    >>> with autocast("cpu", torch.bfloat16):
    ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
    torch.bfloat16
    """
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)
