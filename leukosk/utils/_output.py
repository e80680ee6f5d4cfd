"""Where the commands write, and how text from files reaches the user.

The rules of :doc:`/persistence` ("Hostile folders and model files"), each
enforced here once:

* output names are built from sanitised text (:func:`safe_name`) and checked
  to stay inside their folder (:func:`output_path`);
* an output folder may neither be nor lie inside nor contain an input, may
  not name an input file, and must be writable, checked before any work
  (:func:`check_output_folder`, :func:`check_output_file`);
* a command's output folder is written beside it and renamed into place as a
  whole (:func:`replaced_folder`): an interruption leaves the previous result
  or the new one, never a mix, and a folder is only replaced when every file
  in it is one the command wrote there (its manifest, ``.leukosk-written.json``,
  says so), so no file leukosk did not write is ever lost; an output folder
  named through a symbolic link is written through the link;
* a name (of a file, a class, a folder) has one encoding, in CSV and JSON
  and on the review page (:func:`encode_name`), read back exactly
  (:func:`decode_name`), and is shown so on the terminal (:func:`printable`); CSV cells are guarded against spreadsheet
  formulas by an apostrophe that reading removes (:func:`csv_cell`,
  :func:`csv_text`).
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
           "replaced_folder", "csv_cell", "csv_text", "printable", "encode_name",
           "decode_name", "write_csv"]

_UNSAFE = re.compile(r"[^\w.+=@,-]", re.ASCII)
_MAX_NAME = 80
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_STAGING = ".leukosk-staging-"
_MANIFEST = ".leukosk-written.json"


def _text(name):
    return os.fsdecode(name) if isinstance(name, (bytes, os.PathLike)) else str(name)


def _escaped(ch, backslash="\\\\"):
    """One character of :func:`encode_name`'s text (of :func:`printable`'s
    with ``backslash="\\\\"``)."""
    code = ord(ch)
    if ch == "\\":
        return backslash
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, as os.fsdecode reads it
        return f"\\x{code - 0xDC00:02x}"
    if unicodedata.category(ch)[0] != "C":
        return ch
    if code < 0x80:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def encode_name(name):
    r"""A file name (or any text from a file or a model) as printable Unicode.

    The one encoding of names that leukosk writes, in CSV, in JSON and on
    the review page (and, but for a backslash kept single, on the terminal:
    :func:`printable`), and that :func:`decode_name` reads back exactly: a backslash is doubled, bytes that are not UTF-8 are written
    ``\xNN`` (NN from 80 to ff), control and other invisible characters
    ``\xNN`` (below 80), ``\uNNNN`` or ``\UNNNNNNNN``; every other
    character is itself.

    Examples
    --------
    >>> import os
    >>> from leukosk.utils._output import encode_name
    >>> print(encode_name(os.fsdecode(b"cell\xff.png")), encode_name("a\\b\x1b.jpg"))
    cell\xff.png a\\b\x1b.jpg
    """
    return "".join(map(_escaped, _text(name)))


_ESCAPE = re.compile(r"\\(?:x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|(\\))|\\")


def _unescaped(match):
    byte, short, long, backslash = match.groups()
    if backslash:
        return "\\"
    if byte:
        code = int(byte, 16)
        return chr(code if code < 0x80 else 0xDC00 + code)  # os.fsdecode's form
    if short or long:
        return chr(int(short or long, 16))
    raise ValueError(f"{encode_name(match.string)!r} has a backslash that escapes "
                     "nothing: a backslash of a name is written \\\\.")


def decode_name(text):
    r"""The name :func:`encode_name` wrote as ``text``, exactly (a file name
    whose bytes are not UTF-8 as :func:`os.fsdecode` reads it).

    Raises
    ------
    ValueError
        ``text`` holds a backslash that starts no escape.

    Examples
    --------
    >>> import os
    >>> from leukosk.utils._output import decode_name, encode_name
    >>> name = os.fsdecode(b"a\\x\xff\x00.png")
    >>> decode_name(encode_name(name)) == name, decode_name(r"cell\xff.png") == os.fsdecode(b"cell\xff.png")
    (True, True)
    """
    return _ESCAPE.sub(_unescaped, text)


def printable(text):
    r"""``text`` (a name from a file or a model, a message) safe to show on a
    terminal: :func:`encode_name`'s escapes (control characters, escape
    sequences among them, as ``\x1b``, bytes that are not valid UTF-8 as
    ``\xNN``) but a backslash kept single, so that text already printable,
    an encoded name in a message among it, is shown unchanged.

    Examples
    --------
    >>> from leukosk.utils._output import printable
    >>> print(printable("cell\x1b]0;owned\x07.jpg"), printable(printable("a\\b\x00")))
    cell\x1b]0;owned\x07.jpg a\b\x00
    """
    return "".join(_escaped(ch, "\\") for ch in _text(text))


def _guarded(text):
    """Whether a cell holding ``text`` starts with the apostrophe of :func:`csv_cell`."""
    return text.startswith(_FORMULA) or text.startswith("'")


def csv_cell(text):
    r"""``text`` as a CSV cell a spreadsheet shows as text, never runs.

    The text is :func:`encode_name`'s; a cell starting with ``=``, ``+``,
    ``-``, ``@`` (a formula in Excel or LibreOffice) or an apostrophe gets a
    leading apostrophe, which :func:`csv_text` removes: the two are inverses.

    Examples
    --------
    >>> from leukosk.utils._output import csv_cell
    >>> csv_cell('=HYPERLINK("http://x")'), csv_cell("cell1.jpg"), csv_cell("'=x")
    ('\'=HYPERLINK("http://x")', 'cell1.jpg', "''=x")
    """
    text = encode_name(text)
    return "'" + text if _guarded(text) else text


def csv_text(cell):
    """A cell read back as the text :func:`csv_cell` was given: without the
    apostrophe it put before a formula's first character or an apostrophe
    (the review page writes cells the same way), escapes decoded
    (:func:`decode_name`).

    Examples
    --------
    >>> from leukosk.utils._output import csv_cell, csv_text
    >>> csv_text(csv_cell("=1+2")), csv_text(csv_cell("'=x")), csv_text("'quoted")
    ('=1+2', "'=x", "'quoted")
    """
    return decode_name(cell[1:] if cell.startswith("'") and _guarded(cell[1:]) else cell)


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
        ``out`` is a file, is or lies inside an input folder, contains an
        input (replacing it would delete the input), or cannot be written.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from leukosk.utils._output import check_output_folder
    >>> with tempfile.TemporaryDirectory() as d:
    ...     (pathlib.Path(d) / "cells").mkdir()
    ...     check_output_folder(d, [pathlib.Path(d) / "cells"])
    Traceback (most recent call last):
    ...
    ValueError: --out ... contains the input .../cells, ...
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
        # a missing input is the reading's error ("no folder at ..."), not this
        if _inside(source, resolved) and os.path.lexists(item):
            raise ValueError(
                f"{option} {printable(out)} contains the input {printable(item)}, "
                "which writing the output would overwrite or delete (an output "
                "folder is replaced as a whole). Name a folder that neither lies "
                "inside nor contains an input.")
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


def _written(folder):
    """``{relative path: [size, mtime_ns]}`` of every entry under ``folder``
    but the manifest (symbolic links as themselves, never followed)."""
    entries = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root, name)
            if path.is_dir() and not path.is_symlink():
                continue
            rel = path.relative_to(folder).as_posix()
            if rel != _MANIFEST:
                info = path.lstat()
                entries[rel] = [info.st_size, info.st_mtime_ns]
    return entries


def _write_manifest(folder):
    import json

    # ensure_ascii writes the surrogates of non-UTF-8 names as \\udcNN escapes
    (folder / _MANIFEST).write_text(json.dumps(_written(folder), ensure_ascii=True),
                                    encoding="ascii")


def _read_manifest(folder):
    import json

    try:
        manifest = json.loads((folder / _MANIFEST).read_text(encoding="ascii"))
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _check_owned(out, owned):
    """Refuse to replace ``out`` unless every file in it is one the command
    wrote there, unchanged since (its manifest), under a name it writes."""
    manifest = _read_manifest(out)
    strangers = sorted(p.name for p in out.iterdir()
                       if not owned(p.name) and p.name != _MANIFEST)
    strangers += sorted(rel for rel, stat in _written(out).items()
                        if manifest.get(rel) != stat and rel.split("/")[0] not in strangers)
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
        The output folder. If it exists, every file in it must be one an
        earlier run wrote there, unchanged since (the manifest
        ``.leukosk-written.json`` that run left lists them), under a top-level
        name that satisfies ``owned``: the folder is replaced, so anything
        else in it would be lost. A symbolic link to a folder is written
        through: its target is replaced.
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
    if out.is_symlink():
        out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        _check_owned(out, owned)
    remove_dead_temps(out.parent, _STAGING)
    new = writer_tempdir(out.parent, _STAGING)
    try:
        os.chmod(new, 0o777 & ~_umask())
        yield new
        _write_manifest(new)
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
