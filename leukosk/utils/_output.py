"""Where the commands write, and how text from files reaches the user.

The rules of :doc:`/persistence` ("Hostile folders and model files"), each
enforced here once:

* output names are built from sanitised text (:func:`safe_name`) and checked
  to stay inside their folder (:func:`output_path`);
* an output folder may not be, or be inside, an input folder, may not name an
  input file, and must be writable, checked before any work
  (:func:`check_output_folder`, :func:`check_output_file`);
* a command's output folder is written beside it and renamed into place as a
  whole (:func:`replaced_folder`): an interruption leaves the previous result
  or the new one, never a mix;
* text from files and models is escaped for CSV (:func:`csv_cell`) and for the
  terminal (:func:`printable`).
"""

import contextlib
import ctypes
import errno
import os
import re
import shutil
import signal
import tempfile
import unicodedata
from pathlib import Path

from ._files import _umask, atomic_path, remove_dead_temps, writer_tempdir

__all__ = ["safe_name", "output_path", "check_output_folder", "check_output_file",
           "replaced_folder", "csv_cell", "csv_text", "printable", "unicode_text",
           "write_csv"]

_UNSAFE = re.compile(r"[^\w.+=@,-]", re.ASCII)
_MAX_NAME = 80
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_STAGING = ".leukosk-staging-"


def printable(text):
    """``text`` (a name from a file or a model) safe to show on a terminal.

    Control characters (escape sequences among them) are shown as Python
    escapes, and bytes of file names that are not valid UTF-8 as ``\\xNN``.

    Examples
    --------
    >>> from leukosk.utils._output import printable
    >>> printable("cell\\x1b]0;owned\\x07.jpg")
    'cell\\\\x1b]0;owned\\\\x07.jpg'
    """
    text = os.fsencode(text).decode("utf-8", "backslashreplace") if isinstance(
        text, (str, os.PathLike)) else str(text)
    return "".join(ch if unicodedata.category(ch)[0] != "C" or ch == " "
                   else ch.encode("unicode_escape").decode("ascii") for ch in text)


def csv_cell(text):
    """``text`` as a CSV cell a spreadsheet shows as text, never runs.

    Cells starting with ``=``, ``+``, ``-``, ``@`` (a formula in Excel or
    LibreOffice) get a leading apostrophe; control characters are escaped as
    in :func:`printable`.

    Examples
    --------
    >>> from leukosk.utils._output import csv_cell
    >>> csv_cell("=HYPERLINK(\\"http://x\\")"), csv_cell("cell1.jpg")
    ('\\'=HYPERLINK("http://x")', 'cell1.jpg')
    """
    text = printable(text)
    return "'" + text if text.startswith(_FORMULA) else text


def csv_text(cell):
    """A cell read back as its text: without the apostrophe that
    :func:`csv_cell` (and the review page) put before a formula's first
    character; every other cell unchanged.

    Examples
    --------
    >>> from leukosk.utils._output import csv_cell, csv_text
    >>> csv_text(csv_cell("=1+2")), csv_text("'quoted"), csv_text("cell1.jpg")
    ('=1+2', "'quoted", 'cell1.jpg')
    """
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(_FORMULA) else cell


def unicode_text(name):
    """A file name as valid Unicode (bytes that are not UTF-8 as ``\\xNN``),
    for JSON, which cannot hold the surrogates Python reads such bytes as.

    Examples
    --------
    >>> import os
    >>> from leukosk.utils._output import unicode_text
    >>> unicode_text(os.fsdecode(b"cell\\xff.png"))
    'cell\\\\xff.png'
    """
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def safe_name(text):
    """A file-name part made of ``text``: no separators, no ``..``, short.

    Examples
    --------
    >>> from leukosk.utils._output import safe_name
    >>> safe_name("/../../victim/x"), safe_name("band neutrophil"), safe_name("..")
    ('victim_x', 'band_neutrophil', '_')
    """
    name = _UNSAFE.sub("_", printable(text)).strip("._-")[:_MAX_NAME]
    return re.sub("_+", "_", name) or "_"


def output_path(folder, name):
    """``folder / name``, refused unless it lies directly inside ``folder``."""
    path = Path(folder) / name
    if path.resolve().parent != Path(folder).resolve() or name in ("", ".", ".."):
        raise ValueError(f"refusing to write {printable(name)!r}: it would land "
                         f"outside the output folder {printable(folder)!r}.")
    return path


def _inside(path, folder):
    return path == folder or folder in path.parents


def _nearest_existing(path):
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_writable(folder, option):
    """Write and remove a file in ``folder`` (or the folder that will hold
    it): permissions, read-only mounts and full quotas all show here."""
    where = _nearest_existing(folder)
    try:
        fd, probe = tempfile.mkstemp(dir=where, prefix=".leukosk-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise PermissionError(
            f"{option} {printable(folder)}: cannot write in {printable(where)} "
            f"({exc.strerror or exc}); name a folder you can write to.") from None


def check_output_folder(out, inputs=(), option="--out"):
    """Check, before any work, the folder a command will write.

    Parameters
    ----------
    out : path-like
        The output folder (created later if missing).
    inputs : sequence of path-like
        The command's input files and folders.
    option : str
        How the user named ``out``, for the messages.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    NotADirectoryError, ValueError, PermissionError
        ``out`` is a file, is or lies inside an input folder, or cannot be
        written.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{option} {printable(out)} is a file; name a folder "
                                 "(it is created if missing).")
    resolved = out.resolve()
    for item in map(Path, inputs):
        source = item.resolve()
        if _inside(resolved, source) and (source.is_dir() or source == resolved):
            raise ValueError(
                f"{option} {printable(out)} is inside the input {printable(item)}: "
                "its files would be read as input the next time. Name a folder "
                "outside the input folders.")
    _check_writable(out, option)
    return out


def check_output_file(path, inputs=(), option="--output"):
    """Check, before any work, a file a command will write: not one of its
    input files, not inside an input folder, in a writable folder."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{option} {printable(path)} is a folder; name a file.")
    resolved = path.resolve()
    for item in map(Path, inputs):
        if _inside(resolved, item.resolve()):
            raise ValueError(
                f"{option} {printable(path)} is the input {printable(item)} or lies "
                "inside it: it would be overwritten or read as input. Name a file "
                "outside the inputs.")
    _check_writable(path.parent, option)
    return path


def _check_owned(out, owned):
    strangers = sorted(p.name for p in out.iterdir() if not owned(p.name))
    if strangers:
        raise ValueError(
            f"the output folder {printable(out)} holds files this command did not "
            f"write ({', '.join(printable(s) for s in strangers[:3])}"
            f"{' ...' if len(strangers) > 3 else ''}), and it replaces the folder "
            "as a whole. Name a new or empty folder, or one an earlier run of the "
            "same command wrote.")


def _exchange(a, b):
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``);
    False where the system cannot."""
    rename = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if rename is None:
        return False
    at_fdcwd, exchange = -100, 2
    if rename(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), exchange) == 0:
        return True
    if ctypes.get_errno() in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), str(b))


def _swap_into_place(new, out):
    """Make ``new`` the folder ``out``; the previous ``out`` is removed."""
    if not out.exists():
        os.rename(new, out)
        return
    if _exchange(new, out):
        shutil.rmtree(new)  # now the previous result
        return
    old = writer_tempdir(out.parent, _STAGING)
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        os.rename(out, old / "previous")
        os.rename(new, out)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    shutil.rmtree(old)


def _fsync_tree(folder):
    """Flush every file under ``folder`` (subfolders included) to disk."""
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as f:
                os.fsync(f.fileno())


@contextlib.contextmanager
def replaced_folder(out, owned):
    """Yield a new folder beside ``out``; on success it replaces ``out`` whole.

    Parameters
    ----------
    out : path-like
        The output folder. If it exists, every entry must satisfy ``owned``
        (files an earlier run of the command wrote): the folder is replaced,
        so anything else in it would be lost.
    owned : callable
        ``owned(name)`` is True for the names the command writes.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from leukosk.utils._output import replaced_folder
    >>> with tempfile.TemporaryDirectory() as d:
    ...     out = pathlib.Path(d, "result")
    ...     for text in ("first", "second"):
    ...         with replaced_folder(out, owned=lambda name: name == "a.txt") as new:
    ...             _ = (new / "a.txt").write_text(text)
    ...     (out / "a.txt").read_text(), sorted(p.name for p in pathlib.Path(d).iterdir())
    ('second', ['result'])
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        _check_owned(out, owned)
    remove_dead_temps(out.parent, _STAGING)
    new = writer_tempdir(out.parent, _STAGING)
    try:
        os.chmod(new, 0o777 & ~_umask())
        yield new
        _fsync_tree(new)
        _swap_into_place(new, out)
    finally:
        shutil.rmtree(new, ignore_errors=True)


def write_csv(path, header, rows):
    """Write a CSV file atomically, every text cell escaped
    (:func:`csv_cell`).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from leukosk.utils._output import write_csv
    >>> with tempfile.TemporaryDirectory() as d:
    ...     write_csv(pathlib.Path(d, "t.csv"), ["name", "n"], [["=1+2", 3]])
    ...     pathlib.Path(d, "t.csv").read_text().splitlines()
    ['name,n', "'=1+2,3"]
    """
    import csv

    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows([csv_cell(cell) if isinstance(cell, str) else cell
                          for cell in row] for row in rows)
