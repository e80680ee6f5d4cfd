"""The scan cache of :func:`load_pbc`: NumPy arrays and JSON, never pickle.

One entry per scan, a folder ``scan-<key>/`` under the cache location:

* ``index.json``: the format, the key, each file's SHA-256 and decoding error,
  and the shape and SHA-256 of the decoded images;
* ``images.npy``: the decoded ``uint8`` images (only when an image size was
  asked for), read with ``allow_pickle=False``.

The key covers what a rewrite of an image cannot keep: every file's path,
size, modification *and change* time and inode (``cp -p``, ``rsync -t`` and
``tar`` restore the modification time, never the change time or inode), plus
the image size and the version of everything that decodes (leukosk's decoder,
Pillow, torchvision). An entry is written into a temporary folder that is
renamed into place complete, so a killed writer never leaves a half entry;
what is read is checked against its key, shape and checksum, and an entry that
fails a check is rebuilt. The cache is checked, not authenticated: whoever can
write to it can also change the images it describes, so keep it in a folder
only you can write to.
"""

import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np

from ..utils._files import remove_dead_temps, sha256_bytes, writer_tempdir

__all__ = ["scan_key", "read_entry", "write_entry", "CacheWarning", "DECODER_VERSION"]

FORMAT = "leukosk-scan/2"
#: Bump when decoding or resizing changes the pixels a file gives.
DECODER_VERSION = 2
_TMP_PREFIX = ".scan-tmp-"


class CacheWarning(UserWarning):
    """The data cache could not be used (unwritable, full, or a damaged entry).

    Loading goes on without it; the warning says why and what to do.

    Examples
    --------
    >>> import warnings
    >>> from leukosk.datasets import CacheWarning
    >>> warnings.simplefilter("error", CacheWarning)  # make cache trouble fatal
    >>> warnings.resetwarnings()
    """


def _versions():
    import PIL
    import torchvision

    return {"decoder": DECODER_VERSION, "pillow": PIL.__version__,
            "torchvision": torchvision.__version__}


def scan_key(files, image_size):
    """SHA-256 naming the scan of ``files`` at ``image_size``.

    Parameters
    ----------
    files : list of tuple
        ``(path, label, size, mtime_ns, ctime_ns, inode)`` of each file.
    image_size : int or None

    Returns
    -------
    str
    """
    header = json.dumps({"format": FORMAT, "image_size": image_size, **_versions()},
                        sort_keys=True)
    listing = "\n".join(f"{path}\0{size}\0{mtime}\0{ctime}\0{inode}"
                        for path, _, size, mtime, ctime, inode in files)
    return sha256_bytes(f"{header}\n{listing}")


def _entry(location, key):
    return Path(location) / f"scan-{key}"


def _checksum(images):
    return sha256_bytes(np.ascontiguousarray(images).data)


def read_entry(location, key, n_files):
    """The cached ``(digests, errors, images)`` for ``key``, or None.

    ``None`` when there is no entry; a damaged entry (unreadable, another key,
    wrong length, shape or checksum) is removed, with a :class:`CacheWarning`,
    and ``None`` returned so that the caller scans again.
    """
    entry = _entry(location, key)
    index_path = entry / "index.json"
    if not index_path.is_file():
        return None
    try:
        return _read_checked(entry, index_path, key, n_files)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        warnings.warn(f"the cache entry {entry} is damaged ({exc}); it is removed "
                      "and the images are decoded again.", CacheWarning, stacklevel=3)
        shutil.rmtree(entry, ignore_errors=True)
        return None


def _read_checked(entry, index_path, key, n_files):
    index = json.loads(index_path.read_text(encoding="utf-8"))
    if index.get("format") != FORMAT or index.get("key") != key:
        raise ValueError("its index names another scan")
    digests, errors = index["sha256"], index["errors"]
    if len(digests) != n_files or len(errors) != n_files:
        raise ValueError(f"it lists {len(digests)} files, the folder has {n_files}")
    if index["images"] is None:
        return digests, errors, None
    # copy-on-write map: pages are read once (by the checksum), and changes a
    # caller makes to the returned array never reach the cache file
    images = np.load(entry / "images.npy", mmap_mode="c", allow_pickle=False)
    expected = index["images"]
    n_good = sum(e is None for e in errors)
    if (images.dtype != np.uint8 or list(images.shape) != expected["shape"]
            or images.shape[0] != n_good):
        raise ValueError(f"images of shape {images.shape} and dtype {images.dtype} "
                         f"do not match the index")
    if _checksum(images) != expected["sha256"]:
        raise ValueError("the images' checksum does not match the index")
    return digests, errors, images


def write_entry(location, key, digests, errors, images, folder=None):
    """Store a scan under ``key`` atomically; warn and go on if that fails.

    Entries of earlier scans of the same ``folder`` at the same image size are
    removed once the new one is in place.
    """
    location = Path(location)
    try:
        location.mkdir(parents=True, exist_ok=True)
        remove_dead_temps(location, _TMP_PREFIX)
        tmp = writer_tempdir(location, _TMP_PREFIX)
    except OSError as exc:
        _warn_unwritable(location, exc)
        return
    try:
        _write_into(tmp, key, digests, errors, images, folder)
        final = _entry(location, key)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "index.json").is_file():  # not a concurrent writer's entry
                raise
        _remove_superseded(location, key, folder, images)
    except OSError as exc:
        _warn_unwritable(location, exc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_into(tmp, key, digests, errors, images, folder):
    index = {"format": FORMAT, "key": key, "folder": None if folder is None else str(folder),
             "sha256": list(digests), "errors": list(errors), **_versions(),
             "images": None}
    if images is not None:
        with open(tmp / "images.npy", "wb") as f:
            np.save(f, images, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        index["images"] = {"shape": list(images.shape), "sha256": _checksum(images)}
    with open(tmp / "index.json", "w", encoding="utf-8") as f:
        json.dump(index, f)
        f.flush()
        os.fsync(f.fileno())


def _remove_superseded(location, key, folder, images):
    if folder is None:
        return
    shape = None if images is None else list(images.shape[1:])
    for index_path in location.glob("scan-*/index.json"):
        if index_path.parent.name == f"scan-{key}":
            continue
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
            old_shape = None if index["images"] is None else index["images"]["shape"][1:]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if index.get("folder") == str(folder) and old_shape == shape:
            shutil.rmtree(index_path.parent, ignore_errors=True)


def _warn_unwritable(location, exc):
    warnings.warn(
        f"cannot write the data cache in {location} ({exc}); loading goes on "
        "without caching. Free space or fix its permissions, choose another "
        "folder with cache=... (or $LEUKOSK_DATA), or pass cache=False.",
        CacheWarning, stacklevel=4)
