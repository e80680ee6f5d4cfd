"""Files written whole or not at all, read without pickle, and checksummed.

Each of these is done in one place, here:

* :func:`atomic_path` writes a file whole or not at all, and
  :func:`atomic_paths` files that belong together (a model and its card)
  all or none;
* :func:`writer_tempdir` and :func:`remove_dead_temps` make the temporary
  folders of a writer and remove those that killed writers left behind
  (their names hold the writer's process id);
* :func:`read_tensors` and :func:`read_safetensors_metadata` read tensors
  (safetensors, or a ``torch.save`` state dict with
  ``torch.load(weights_only=True)``): nothing is unpickled, and a file that
  cannot be read is one :class:`ValueError` naming the file, the problem and
  the fix;
* :func:`sha256_file` (streamed) and :func:`sha256_bytes` are the SHA-256
  digests of files and of data.
"""

import contextlib
import glob
import hashlib
import os
import shutil
import tempfile
import warnings
from pathlib import Path

__all__ = ["atomic_path", "atomic_paths", "writer_tempdir", "remove_dead_temps", "dead_writer", "writer_id",
           "read_tensors", "read_safetensors_metadata", "sha256_file", "sha256_bytes"]

#: Bytes read at a time by :func:`sha256_file`.
CHUNK = 1 << 20
#: The start of the name of :func:`atomic_paths`' staging folder.
_TOGETHER = ".leukosk-together-"


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _dead(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # running, under another user
        return False
    return False


def writer_id():
    """``<pid>h<host tag>``: names this writer in temporary names, so that a
    folder shared between machines (NFS) never has one machine judge another
    machine's process dead by its process id."""
    import socket
    import zlib

    return f"{os.getpid()}h{zlib.crc32(socket.gethostname().encode()):08x}"


def dead_writer(name, prefix):
    """Whether ``name`` is a temporary name ``<prefix><writer id>-...`` of a
    process of this machine that no longer runs (killed mid-write: its
    leftovers may go). Names of other machines' writers are never judged
    dead; names with a bare process id (older leukosk) count as this machine's.

    Examples
    --------
    >>> from leukosk.utils._files import dead_writer, writer_id
    >>> dead_writer(f".tmp-{writer_id()}-x", ".tmp-"), dead_writer("other", ".tmp-")
    (False, False)
    >>> dead_writer(".tmp-999999999h00000000-x", ".tmp-")  # another machine's
    False
    """
    if not name.startswith(prefix):
        return False
    pid, _, host = name[len(prefix):].split("-")[0].partition("h")
    if host and host != writer_id().partition("h")[2]:
        return False
    try:
        return _dead(int(pid))
    except ValueError:
        return False


def remove_dead_temps(folder, prefix):
    """Remove what killed writers left in ``folder``: the entries named
    ``<prefix><pid>-...`` whose process no longer runs.

    Files are unlinked and folders removed with their contents; entries of
    running writers (this process included) and all other names are kept.
    A folder that does not exist holds nothing to remove.

    Parameters
    ----------
    folder : path-like
    prefix : str
        The start of the writer's temporary names, before its process id (as
        :func:`writer_tempdir` and :func:`atomic_path` name them).

    Examples
    --------
    >>> import os, pathlib, tempfile
    >>> from leukosk.utils._files import remove_dead_temps, writer_tempdir
    >>> with tempfile.TemporaryDirectory() as d:
    ...     mine = writer_tempdir(d, ".tmp-")             # this process runs
    ...     _ = pathlib.Path(d, ".tmp-999999999-gone").write_text("x")  # no such pid
    ...     remove_dead_temps(d, ".tmp-")
    ...     [p.name == mine.name for p in pathlib.Path(d).iterdir()]
    [True]
    """
    for path in Path(folder).glob(f"{glob.escape(prefix)}*"):
        if not dead_writer(path.name, prefix):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def writer_tempdir(folder, prefix):
    """A new, empty folder ``<prefix><pid>-<random>`` in ``folder``.

    Renamed into place once complete, it makes a folder appear whole; if the
    writer is killed first, :func:`remove_dead_temps` with the same
    ``prefix`` removes it later.

    Examples
    --------
    >>> import os, tempfile
    >>> from leukosk.utils._files import writer_tempdir
    >>> with tempfile.TemporaryDirectory() as d:
    ...     writer_tempdir(d, ".tmp-").name.startswith(f".tmp-{os.getpid()}h")
    True
    """
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{writer_id()}-", dir=folder))


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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temps(path.parent, f".{path.name}.")  # left by killed writers
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{writer_id()}-",
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


def _keep_copy(path, copy):
    """``copy`` holds ``path``'s content (a hard link where possible)."""
    try:
        os.link(path, copy)
    except OSError:
        shutil.copy2(path, copy)


def _install(temps, paths, previous):
    """Move each of ``temps`` to its path, in order; if one move fails, undo
    those made (the previous files, kept in ``previous``, come back)."""
    done = []
    try:
        for tmp, path in zip(temps, paths):
            old = previous / path.name if path.exists() else None
            if old is not None:
                _keep_copy(path, old)
            os.replace(tmp, path)
            done.append((path, old))
    except BaseException:
        for path, old in reversed(done):
            if old is None:
                path.unlink(missing_ok=True)
            else:
                os.replace(old, path)
        raise


@contextlib.contextmanager
def atomic_paths(*paths):
    """Yield temporary paths for files that belong together; on success they
    are moved into place, in the order given, all or none.

    The paths must share a folder. The temporary files are written in a
    staging folder inside it; nothing is moved until all are written, and
    if a move fails, the moves made are undone: the folder never pairs a new
    file with an old one of the set (a model with the card of another).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from leukosk.utils._files import atomic_paths
    >>> with tempfile.TemporaryDirectory() as d:
    ...     card, model = pathlib.Path(d, "card.json"), pathlib.Path(d, "model.bin")
    ...     with atomic_paths(card, model) as (card_tmp, model_tmp):
    ...         _ = card_tmp.write_text("{}"), model_tmp.write_bytes(b"weights")
    ...     sorted(p.name for p in pathlib.Path(d).iterdir())
    ['card.json', 'model.bin']
    """
    paths = [Path(p) for p in paths]
    folder = paths[0].parent
    if any(p.parent != folder for p in paths) or len({p.name for p in paths}) < len(paths):
        raise ValueError("atomic_paths writes distinct files of one folder.")
    folder.mkdir(parents=True, exist_ok=True)
    remove_dead_temps(folder, _TOGETHER)
    staging = writer_tempdir(folder, _TOGETHER)
    try:
        (staging / "previous").mkdir()
        temps = [staging / p.name for p in paths]
        yield temps
        for tmp in temps:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        _install(temps, paths, staging / "previous")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _detail(exc, limit=200):
    """The useful part of a reader's error, on one line. torch's refusal of a
    pickle says what it refused after ``WeightsUnpickler error:``, behind
    advice to load with ``weights_only=False`` that is not to be taken here."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = lines[0] if lines else ""
    if len(line) > limit:
        line = line[:limit - 3] + "..."
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


@contextlib.contextmanager
def _readable(source, kind, what, fix):
    """Turn any failure to read ``source`` into the one ValueError (or a
    FileNotFoundError when there is no file)."""
    is_path = isinstance(source, (str, os.PathLike))
    name = repr(os.fspath(source)) if is_path else repr(source)
    if is_path and not Path(source).is_file():
        if not Path(source).exists():
            raise FileNotFoundError(f"there is no {what} {name}. {fix}")
        raise ValueError(f"the {what} {name} is not a file. {fix}")
    try:
        yield
    except (MemoryError, PermissionError):
        raise
    except Exception as exc:  # noqa: BLE001 - readers raise many types for bad files
        pickled = (", or holds objects other than tensors (refused: unpickling them "
                   "could run code)") if kind == "torch.save" else ""
        raise ValueError(f"{name} is not a readable {kind} {what} ({_detail(exc)}): it "
                         f"is truncated or corrupt{pickled}. {fix}") from exc


def read_tensors(source, *, safetensors=None, metadata=False, what="file",
                 fix="Save or download it again."):
    """Tensors from a safetensors file or a ``torch.save`` state dict, on the
    CPU; nothing is ever unpickled.

    Parameters
    ----------
    source : path-like or file object
        The file (a file object only for ``torch.save`` files).
    safetensors : bool, default=None
        Whether it is a safetensors file; None decides by the suffix
        ``.safetensors``. Other files are read with
        ``torch.load(weights_only=True)``, which refuses anything but
        tensors and plain containers.
    metadata : bool, default=False
        Return ``(tensors, metadata)``: also the safetensors file's metadata
        (a dict of str, empty if it has none).
    what : str, default="file"
        What the file is, for the message (``"model file"``,
        ``"checkpoint file"``).
    fix : str, default="Save or download it again."
        What the user can do about an unreadable file, for the message.

    Returns
    -------
    dict of str to torch.Tensor
        In memory of their own (not mapped from the file, which may change
        later). For ``torch.save`` files, whatever state dict was saved (an
        optimizer's holds more than tensors).

    Raises
    ------
    FileNotFoundError
        No file at ``source``.
    ValueError
        It cannot be read: truncated, corrupt, not of its format, or (for
        ``torch.save`` files) pickling objects other than tensors. The
        message names the file, the problem and ``fix``.

    Examples
    --------
    >>> import pathlib, tempfile, torch
    >>> from safetensors.torch import save_file
    >>> from leukosk.utils._files import read_tensors
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = pathlib.Path(d, "w.safetensors")
    ...     save_file({"w": torch.ones(2)}, str(path), metadata={"k": "v"})
    ...     tensors, meta = read_tensors(path, metadata=True)
    ...     _ = path.write_bytes(b"junk")
    ...     try:
    ...         read_tensors(path, what="weights file", fix="Export it again.")
    ...     except ValueError as exc:
    ...         message = str(exc)
    >>> tensors["w"].tolist(), meta
    ([1.0, 1.0], {'k': 'v'})
    >>> "is not a readable safetensors weights file" in message
    True
    """
    if safetensors is None:
        safetensors = (isinstance(source, (str, os.PathLike))
                       and Path(source).suffix == ".safetensors")
    if not safetensors:
        if metadata:
            raise ValueError("metadata=True is for safetensors files")
        import torch

        with _readable(source, "torch.save", what, fix), warnings.catch_warnings():
            # about pickle protocols torch does not write itself: such a file
            # is read or refused all the same
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            return torch.load(source, map_location="cpu", weights_only=True)
    tensors, meta = _read_safetensors(source, what, fix, tensors=True)
    return (tensors, meta) if metadata else tensors


def read_safetensors_metadata(path, *, what="file", fix="Save or download it again."):
    """The metadata of a safetensors file (a dict of str), without its tensors.

    Raises the errors of :func:`read_tensors`.

    Examples
    --------
    >>> import pathlib, tempfile, torch
    >>> from safetensors.torch import save_file
    >>> from leukosk.utils._files import read_safetensors_metadata
    >>> with tempfile.TemporaryDirectory() as d:
    ...     save_file({"w": torch.ones(2)}, f"{d}/m.safetensors", metadata={"format": "demo"})
    ...     read_safetensors_metadata(pathlib.Path(d) / "m.safetensors")
    {'format': 'demo'}
    """
    return _read_safetensors(path, what, fix, tensors=False)[1]


def _read_safetensors(path, what, fix, *, tensors):
    """``(tensors or None, metadata)`` of a safetensors file."""
    from safetensors import safe_open

    with _readable(path, "safetensors", what, fix):
        with safe_open(os.fspath(path), framework="pt", device="cpu") as f:
            # copied out of safetensors' memory map: tensors that aliased the
            # file would change (or crash the process) if it were rewritten
            # in place, after any check of them
            read = {k: f.get_tensor(k).clone() for k in f.keys()} if tensors else None
            return read, f.metadata() or {}


def sha256_file(path, *, chunk_size=CHUNK):
    """The SHA-256 of a file's contents (hex), read ``chunk_size`` bytes at a
    time: memory stays small whatever the file's size.

    Examples
    --------
    >>> import hashlib, pathlib, tempfile
    >>> from leukosk.utils._files import sha256_file
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = pathlib.Path(d, "a.bin")
    ...     _ = path.write_bytes(b"abc" * 1000)
    ...     sha256_file(path, chunk_size=7) == hashlib.sha256(b"abc" * 1000).hexdigest()
    True
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data):
    """The SHA-256 (hex) of data already in memory: bytes, a string (as
    UTF-8, undecodable characters kept as they came) or any buffer (a NumPy
    array's ``.data``).

    Examples
    --------
    >>> from leukosk.utils._files import sha256_bytes
    >>> sha256_bytes(b"abc") == sha256_bytes("abc")
    True
    >>> sha256_bytes(b"abc")[:12]
    'ba7816bf8f01'
    """
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    return hashlib.sha256(data).hexdigest()
