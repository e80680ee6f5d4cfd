"""Shared by the benchmarks: the device line, timing helpers, FLOP counts."""

import argparse
import os
import platform
import statistics
import time

import torch

# Fixed image sizes: let cuDNN pick the fastest convolution algorithms (the
# performance guide recommends the same to users).
torch.backends.cudnn.benchmark = True


def pick_device(requested="auto"):
    """(device, description): CUDA if asked for or ``auto`` and present, else CPU."""
    if torch.cuda.is_available() and requested in ("auto", "cuda"):
        return "cuda", f"cuda ({torch.cuda.get_device_name()}); torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    return "cpu", (f"cpu ({cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} "
                   f"torch threads); torch {torch.__version__}")


def training_parser(doc, precision=True):
    """The options the throughput benchmarks share (None: the script's default)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized run")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--images", type=int, default=None)
    if precision:
        parser.add_argument("--amp", action="store_true", help="bf16 autocast")
        parser.add_argument("--channels-last", action="store_true")
    return parser


def load_folder(path, image_size):
    """A PBC folder decoded at ``image_size``, without the data-report warnings
    (the benchmarks report their own figures)."""
    import warnings

    from leukosk.datasets import PBCDataWarning, load_pbc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PBCDataWarning)
        return load_pbc(path, image_size=image_size, verbose=False)


def sync(device):
    """Wait for queued GPU work, so that timings cover it."""
    if device == "cuda":
        torch.cuda.synchronize()


def median_time(func, repeats):
    """Median wall time of ``repeats`` calls of ``func()`` (which must sync)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_gflops(device, dtype=torch.float32):
    """The machine's practical peak: GFLOP/s of a large matrix product.

    Measured, not looked up, so it names what this device reaches in
    ``dtype`` right now (a datasheet figure would not exist for every CPU).
    """
    n = 8192 if device == "cuda" else 2048
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    repeats = 10 if device == "cuda" else 3

    def run():
        for _ in range(repeats):
            a @ b
        sync(device)

    # On CUDA, cuDNN runs float32 convolutions in TF32 by default, so the
    # float32 peak to compare with is the TF32 one.
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        run()  # warm-up
        return 2 * n**3 * repeats / median_time(run, 3) / 1e9
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32


def forward_gflop(module, image_size):
    """GFLOP of one forward pass of ``module`` on one image (multiply-add = 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    module = getattr(module, "_orig_mod", module)
    param = next(module.parameters())
    x = torch.zeros(1, 3, image_size, image_size, dtype=torch.uint8,
                    device=param.device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module.eval()(x)
    return counter.get_total_flops() / 1e9


def precision_name(amp, channels_last=False):
    """How a run's precision and layout are printed."""
    return ("bf16 autocast" if amp else "fp32") + (", channels_last" if channels_last else "")


# The provenance records (docs/results/*.json): one schema and one writer for
# every script that produces a published number.
from _records import (RecordError, add_record_options, make_record,  # noqa: E402,F401
                      resolve_machine, script_command, validate_record, write_records)


def logged_run(log, record, run, *, key=None, reraise=False):
    """Run ``run()`` and append ``record`` with its result to the JSON-lines
    file ``log``, failures (and interruptions) included: the result's items
    are merged into ``record`` (or stored under ``key``), an exception's
    last line goes to ``record["error"]`` and is re-raised with ``reraise``
    (else its traceback is printed). Returns ``record``."""
    import json
    import traceback

    try:
        result = run()
        record.update({key: result} if key else result)
    except BaseException as exc:  # every run is logged, failures included
        record["error"] = "".join(traceback.format_exception_only(exc)).strip()
        if reraise:
            raise
        traceback.print_exc()
    finally:
        with open(log, "a") as f:
            f.write(json.dumps(record) + "\n")
        print(json.dumps(record))
    return record
