"""Finding the image files that a list of files and folders names.

The rule for a folder of unlabelled cells (one sample to predict or count):
every file under it, recursively, whose suffix is one of
:data:`leukosk.utils._images.IMAGE_SUFFIXES`; hidden files and folders are
ignored. :func:`load_pbc` reads labelled folders differently on purpose: it
tries every file of a class folder and reports those that are not images.
"""

import os
import warnings
from pathlib import Path

from ..utils._images import IMAGE_SUFFIXES, image_problem
from ..utils._output import printable
from ._pbc import PBCDataWarning

__all__ = ["list_images"]

_SHOWN = 5


def list_images(paths):
    """The image files that ``paths`` name: files as given, folders searched.

    A file is taken whatever its suffix; a folder is searched recursively for
    files with an image suffix (``.jpg``, ``.jpeg``, ``.png``, ``.tif``,
    ``.tiff``, ``.bmp``, any case), in name order, hidden files and folders
    ignored. Each image is decoded once here, so that entries that cannot be
    images (unreadable folders or files, broken links, FIFOs, empty,
    truncated or oversized files) are skipped before any prediction, and
    listed in one :class:`PBCDataWarning`.

    Parameters
    ----------
    paths : sequence of path-like
        Image files and folders.

    Returns
    -------
    list of str
        The image files, in the order of ``paths`` (a folder's in name order).

    Raises
    ------
    FileNotFoundError
        An entry of ``paths`` does not exist.
    ValueError
        No image at all was found.

    Examples
    --------
    >>> from leukosk.datasets import list_images, sample_folder
    >>> files = list_images([sample_folder() / "basophil"])
    >>> len(files), files[0].endswith(".jpg")
    (20, True)
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files, skipped = [], []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            _walk(path, files, skipped)
        elif os.path.lexists(path):
            _add_image(path, files, skipped)
        else:
            raise FileNotFoundError(f"no such image or folder: {printable(item)}")
    if skipped:
        n = len(skipped)
        warnings.warn(f"{n} entr{'y' if n == 1 else 'ies'} skipped: "
                      + "; ".join(f"{printable(p)} ({why})" for p, why in skipped[:_SHOWN])
                      + (" ..." if n > _SHOWN else ""), PBCDataWarning, stacklevel=2)
    if not files:
        raise ValueError("no image files found in the given paths")
    return files


def _walk(folder, files, skipped):
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda entry: entry.name)
    except OSError as exc:
        skipped.append((str(folder), f"unreadable folder: {exc.strerror or exc}"))
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            _walk(entry.path, files, skipped)
        elif Path(entry.name).suffix.lower() in IMAGE_SUFFIXES:
            _add_image(Path(entry.path), files, skipped)


def _add_image(path, files, skipped):
    why = image_problem(path)
    if why:
        skipped.append((str(path), why))
    else:
        files.append(str(path))
