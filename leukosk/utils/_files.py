"""Files written whole or not at all, and state dicts read without pickle."""

import contextlib
import glob
import os
import tempfile
from pathlib import Path

import torch

__all__ = ["atomic_path", "write_csv", "read_state_dict"]


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; move it into place on success.

    The temporary file is in the same folder (same filesystem), so the final
    :func:`os.replace` is atomic: readers see the old file or the new one,
    never a half-written one, and a crash leaves the old file intact. The
    temporary name holds the writer's process id: temporary files of killed
    writers are removed by the next write. The file gets the permissions
    ``open()`` would give it (``0o666`` less the umask).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from leukosk.utils._files import atomic_path
    >>> with tempfile.TemporaryDirectory() as d:
    ...     target = pathlib.Path(d, "out.txt")
    ...     with atomic_path(target) as tmp:
    ...         _ = tmp.write_text("done")
    ...     target.read_text()
    'done'
    """
    from ._output import _umask, dead_writer

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        if dead_writer(old.name, f".{path.name}."):  # left by a killed writer
            old.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}-",
                               suffix=".tmp")
    os.fchmod(fd, 0o666 & ~_umask())  # as open() would create it, not mkstemp's 0600
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_csv(path, header, rows):
    """Write a CSV file atomically, every text cell escaped
    (:func:`leukosk.utils._output.csv_cell`).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from leukosk.utils._files import write_csv
    >>> with tempfile.TemporaryDirectory() as d:
    ...     write_csv(pathlib.Path(d, "t.csv"), ["name", "n"], [["=1+2", 3]])
    ...     pathlib.Path(d, "t.csv").read_text().splitlines()
    ['name,n', "'=1+2,3"]
    """
    import csv

    from ._output import csv_cell

    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows([csv_cell(cell) if isinstance(cell, str) else cell
                          for cell in row] for row in rows)


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
