"""Loading a PBC folder (``<class>/<ABBR>_<id>.jpg``) as users download it.

The public PBC download has quirks a loader must report rather than crash on
or train on silently: a hidden file whose name ends in ``.jpg`` but that is
not an image, and byte-identical duplicate images, one pair of which carries
two different labels. :func:`load_pbc` skips and lists the former, groups the
latter (so splits can keep copies together), and caches decoded arrays.
"""

import io
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from stat import S_ISREG

import numpy as np
import torch
from sklearn.utils import Bunch

from ..utils._files import sha256_bytes
from ..utils._images import image_error, resize_batch, rgb_array
from ._cache import CacheWarning, read_entry, scan_key, write_entry
from ._classes import PBC_CLASSES
from ._home import get_data_home

__all__ = ["load_pbc", "PBCDataWarning", "PBC_CLASSES"]



class PBCDataWarning(UserWarning):
    """Files were skipped, or duplicates carry conflicting labels.

    :func:`load_pbc` reports the details in the returned ``skipped`` and
    ``conflicts``; turn the warning into an error to refuse such data.

    Examples
    --------
    >>> import warnings
    >>> from leukosk.datasets import PBCDataWarning, load_pbc
    >>> from leukosk.datasets import sample_folder
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error", PBCDataWarning)  # data problems are fatal
    ...     data = load_pbc(sample_folder(), cache=False, verbose=False)
    >>> len(data.target)
    160
    """


def _check_folder(path):
    folder = Path(path).expanduser()
    if not folder.exists():
        raise FileNotFoundError(
            f"no folder at {str(folder)!r}. Pass the folder that holds the "
            "class subfolders (e.g. .../PBC_dataset_normal_DIB), or download "
            "it with leukosk.datasets.fetch_pbc().")
    if not folder.is_dir():
        raise NotADirectoryError(f"{str(folder)!r} is a file, not a folder of "
                                 "class subfolders.")
    return folder


def _sorted_entries(folder):
    with os.scandir(folder) as it:
        return sorted(it, key=lambda entry: entry.name)


def _list_files(folder):
    """Class names, candidate files and skipped files.

    One ``os.scandir`` pass: each file is stat'ed once, and its size,
    modification and change times and inode become the cache key. Entries
    that cannot be stat'ed (a symbolic-link loop, a vanished file) are
    skipped and reported.
    """
    entries = _sorted_entries(folder)
    if not entries:
        raise ValueError(f"the folder {str(folder)!r} is empty; expected one "
                         "subfolder per class with images inside.")
    classes = [e for e in entries if e.is_dir() and not e.name.startswith(".")]
    if not classes:
        raise ValueError(
            f"the folder {str(folder)!r} has no class subfolders; expected the "
            "PBC layout <folder>/<class>/<image>.jpg (e.g. basophil/BA_1.jpg).")
    candidates, skipped = [], []
    for class_dir in classes:
        try:
            files = _sorted_entries(class_dir.path)
        except OSError as exc:
            skipped.append((class_dir.path, f"unreadable folder ({exc.strerror})"))
            continue
        for f in files:
            stat, reason = _stat(f)
            if reason:
                skipped.append((f.path, reason))
                continue
            candidates.append((f.path, class_dir.name, stat.st_size, stat.st_mtime_ns,
                               stat.st_ctime_ns, stat.st_ino))
    return [c.name for c in classes], candidates, skipped


def _stat(entry):
    """(stat result, None) of an image file entry, or (None, why it cannot be one)."""
    if entry.name.startswith("."):
        return None, "hidden file"
    try:
        stat = entry.stat()
    except OSError as exc:
        return None, f"unreadable file ({exc.strerror})"
    return (stat, None) if S_ISREG(stat.st_mode) else (None, "not a file")


def _decode_resized(data, image_size):
    chw = torch.from_numpy(rgb_array(io.BytesIO(data))).permute(2, 0, 1)
    return resize_batch(chw, image_size).permute(1, 2, 0).numpy()


def _verify(data):
    """Decode fully (a header check misses truncated files); keep nothing."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        img.load()


def _scan_one(path, image_size):
    """(sha256, error or None, decoded image or None) of one file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return "", f"unreadable file ({exc.strerror or exc})", None
    digest = sha256_bytes(data)  # of the bytes decoded: one read
    try:
        if image_size is None:
            _verify(data)
            return digest, None, None
        return digest, None, _decode_resized(data, image_size)
    except Exception as exc:  # noqa: BLE001 - any decoding failure skips the file
        return digest, image_error(exc), None


def _scan(paths, image_size, n_jobs, verbose):
    """Hash and check (and decode) ``paths`` in threads, with a progress bar."""
    from tqdm.auto import tqdm

    from ..utils._runtime import live_progress

    workers = n_jobs if n_jobs and n_jobs > 0 else (os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(_scan_one, paths, [image_size] * len(paths))
        results = list(tqdm(results, total=len(paths),
                            disable=not verbose or not live_progress(),
                            desc="decoding" if image_size else "checking",
                            unit="img"))
    digests = [r[0] for r in results]
    errors = [r[1] for r in results]
    images = None
    if image_size is not None:
        good = [r[2] for r in results if r[1] is None]
        images = (np.stack(good) if good else
                  np.empty((0, image_size, image_size, 3), np.uint8))
    return digests, errors, images


def _cache_location(cache, data_home):
    if cache is not True:
        return Path(cache)
    try:
        return get_data_home(data_home) / "cache"
    except OSError as exc:
        warnings.warn(f"cannot create leukosk's data folder ({exc}); loading goes "
                      "on without caching. Set $LEUKOSK_DATA to a writable folder, "
                      "or pass cache=False.", CacheWarning, stacklevel=4)
        return None


def _cached_scan(folder, files, image_size, n_jobs, verbose, cache, data_home):
    """:func:`_scan`, memoised (see ``_cache.py`` for the key and the format)."""
    paths = [f[0] for f in files]
    location = None if cache is False else _cache_location(cache, data_home)
    if location is None:
        return _scan(paths, image_size, n_jobs, verbose)
    key = scan_key(files, image_size)
    cached = read_entry(location, key, len(files))
    if cached is not None:
        return cached
    digests, errors, images = _scan(paths, image_size, n_jobs, verbose)
    write_entry(location, key, digests, errors, images, folder=folder)
    return digests, errors, images


def _duplicate_groups(digests):
    """Group id per file: files with identical bytes share one."""
    ids = {}
    return np.array([ids.setdefault(d, len(ids)) for d in digests])


def _describe(report):
    lines = []
    if report["skipped"]:
        lines.append(f"{len(report['skipped'])} file(s) skipped: " + "; ".join(
            f"{p} ({why})" for p, why in report["skipped"][:5]))
    if report["conflicts"]:
        lines.append(f"{len(report['conflicts'])} group(s) of identical images "
                     "with different labels: " + "; ".join(
                         ", ".join(f"{p} [{lab}]" for p, lab in group)
                         for group in report["conflicts"][:5]))
    return " ".join(lines)


def load_pbc(path, *, image_size=None, drop_duplicates=False, strict=False,
             n_jobs=None, cache=True, data_home=None, verbose=True):
    """Load a PBC dataset folder: images or paths, labels and a data report.

    Reads the layout of the published PBC dataset (Acevedo et al. 2020),
    ``<path>/<class>/<ABBR>_<id>.jpg``, any subset of it, or any folder of
    class subfolders (files directly in ``path``, such as a README, are
    ignored). Files that are not images (a hidden ``.jpg`` that is not
    a JPEG, a truncated file) are skipped, listed in ``skipped`` and warned
    about, never trained on. Byte-identical files are found by SHA-256 and
    grouped (``groups``), so that splits can keep copies on one side;
    copies filed under different classes are listed in ``conflicts``.

    Parameters
    ----------
    path : str or path-like
        The folder holding one subfolder per class.
    image_size : int or None, default=None
        Decode every image and resize the whole image (bilinear, antialiased,
        no crop) to ``image_size x image_size``; ``images`` is then a uint8
        array. ``None`` still decodes every file once to check it (a header
        check would miss truncated files) but returns ``images`` as paths,
        which :class:`~leukosk.VGG19LeukocyteClassifier` decodes batch by batch.
    drop_duplicates : bool, default=False
        Keep one file of each group of identical files; groups whose copies
        carry different labels are dropped entirely (their label is unknown).
    strict : bool, default=False
        Raise instead of skipping when a file is unreadable or not an image.
    n_jobs : int or None, default=None
        Threads for hashing and decoding; ``None`` uses all CPUs.
    cache : bool or path-like, default=True
        Keep the scan (hashes, and decoded arrays when ``image_size`` is set)
        under ``<data_home>/cache`` (or the given folder) as a NumPy array and
        a JSON index, never a pickle. The key is every file's path, size,
        modification and change time and inode, plus ``image_size`` and the
        decoder's version, so a rewritten file (even with its modification
        time restored) invalidates it; an entry is checked against its key
        and checksum when read. An unwritable folder means no caching, with a
        :class:`CacheWarning`. ``False`` disables it.
    data_home : str or path-like, default=None
        leukosk's data folder; default ``$LEUKOSK_DATA`` or ``~/leukosk_data``.
    verbose : bool, default=True
        Show a progress bar.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        images : ndarray (n, image_size, image_size, 3) uint8, or ndarray of str paths
        target : ndarray of str, the class folder names
        target_names : ndarray of str, sorted
        filenames : ndarray of str
        groups : ndarray of int, one id per group of byte-identical files
        sha256 : ndarray of str
        skipped : list of (path, reason)
        duplicates : list of lists of paths (groups of two or more files)
        conflicts : list of lists of (path, label), duplicates across classes
        dropped : list of paths removed by ``drop_duplicates``

    Raises
    ------
    FileNotFoundError, NotADirectoryError
        The folder does not exist or is a file.
    ValueError
        The folder is empty or has no class subfolders; or, with ``strict``,
        a file is not a readable image.

    Warns
    -----
    PBCDataWarning
        When files were skipped or duplicates carry conflicting labels.

    Examples
    --------
    >>> from leukosk.datasets import load_pbc
    >>> from leukosk.datasets import sample_folder
    >>> data = load_pbc(sample_folder(), image_size=32, cache=False, verbose=False)
    >>> data.images.shape, len(data.target_names), data.skipped
    ((160, 32, 32, 3), 8, [])
    """
    folder = _check_folder(path)
    class_names, files, skipped = _list_files(folder)
    digests, errors, images = _cached_scan(folder, files, image_size, n_jobs,
                                           verbose, cache, data_home)
    bad = [(f[0], why) for f, why in zip(files, errors) if why]
    if strict and (bad or skipped):
        raise ValueError(
            f"{len(bad) + len(skipped)} file(s) in {str(folder)!r} are not "
            "readable images: " + "; ".join(f"{p} ({w})" for p, w in (skipped + bad)[:5])
            + ". Remove them, or call with strict=False to skip them.")
    keep = np.array([why is None for why in errors], dtype=bool)
    filenames = np.array([f[0] for f in files])[keep]
    target = np.array([f[1] for f in files])[keep]
    digests = np.array(digests)[keep]
    groups = _duplicate_groups(digests)
    report = _duplicate_report(filenames, target, groups)
    report["skipped"] = skipped + bad
    dropped = np.zeros(len(filenames), dtype=bool)
    if drop_duplicates:
        dropped = _duplicates_to_drop(target, groups)
    report["dropped"] = filenames[dropped].tolist()
    if dropped.any():  # a mask that keeps everything would still copy
        keep = ~dropped
        images = None if images is None else images[keep]
        filenames, target, groups, digests = (a[keep] for a in
                                              (filenames, target, groups, digests))
    empty = sorted(set(class_names) - set(target))
    if empty:
        report["skipped"] += [(str(folder / name), "class folder without images")
                              for name in empty]
    if report["skipped"] or report["conflicts"]:
        warnings.warn(_describe(report) + " See the returned 'skipped' and "
                      "'conflicts'.", PBCDataWarning, stacklevel=2)
    return Bunch(
        images=filenames if images is None else images,
        target=target, target_names=np.unique(target), filenames=filenames,
        groups=groups, sha256=digests,
        DESCR=f"PBC images loaded from {folder} ({len(target)} images, "
              f"{len(np.unique(target))} classes).",
        **report)


def _members(groups):
    """Indices of each group with two or more files."""
    members = {}
    for i, group in enumerate(groups.tolist()):
        members.setdefault(group, []).append(i)
    return [m for m in members.values() if len(m) > 1]


def _duplicate_report(filenames, target, groups):
    duplicates, conflicts = [], []
    for members in _members(groups):
        duplicates.append(filenames[members].tolist())
        if len(set(target[members])) > 1:
            conflicts.append([(str(filenames[i]), str(target[i])) for i in members])
    return {"duplicates": duplicates, "conflicts": conflicts}


def _duplicates_to_drop(target, groups):
    """Mask: all but the first copy; every copy of label-conflicting groups."""
    drop = np.zeros(len(groups), dtype=bool)
    for members in _members(groups):
        conflicting = len(set(target[members])) > 1
        drop[members if conflicting else members[1:]] = True
    return drop
