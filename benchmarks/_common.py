"""What every benchmark prints first: the device it measured on."""

import os
import platform

import torch


def pick_device(requested="auto"):
    """(device, description): CUDA if asked for or ``auto`` and present, else CPU."""
    if torch.cuda.is_available() and requested in ("auto", "cuda"):
        return "cuda", f"cuda ({torch.cuda.get_device_name()}); torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    return "cpu", (f"cpu ({cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} "
                   f"torch threads); torch {torch.__version__}")


def sync(device):
    """Wait for queued GPU work, so that timings cover it."""
    if device == "cuda":
        torch.cuda.synchronize()
