"""Downloading the PBC dataset archive: resumable, verified, extracted atomically."""

import http.client
import os
import shutil
import socket
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import PurePosixPath

from filelock import FileLock

from ..utils._files import remove_dead_temps, sha256_file, writer_tempdir
from ._classes import PBC_COUNTS
from ._home import get_data_home
from ._pbc import load_pbc

__all__ = ["fetch_pbc", "PBC_URL", "PBC_COUNTS", "PBC_FOLDER"]

#: Public download of ``PBC_dataset_normal_DIB.zip`` (Mendeley Data,
#: doi:10.17632/snkd93bnjr.1, CC BY 4.0).
PBC_URL = ("https://data.mendeley.com/public-files/datasets/snkd93bnjr/files/"
           "2fc38728-2ae7-4a62-a857-032af82334c3/file_downloaded")
PBC_FOLDER = "PBC_dataset_normal_DIB"
_ARCHIVE = f"{PBC_FOLDER}.zip"
_CHUNK = 1 << 20
_STAGING = ".pbc-extract-"


#: Refuse archives whose members would expand to more than this many times
#: the archive's size (PBC's JPEGs barely compress: about 1x), or than
#: ``_MAX_EXTRACTED_BYTES`` in all: a "zip bomb" fills the disk otherwise.
_MAX_EXPANSION_RATIO = 20
_MAX_EXTRACTED_BYTES = 8 << 30


class _Truncated(Exception):
    """The server closed the connection before sending everything."""


class _RangeRefused(Exception):
    """The server answered a resumption with other bytes than asked for."""


def _offline_message(url, target, reason):
    return (
        f"could not download the PBC dataset from {url} ({reason}).\n"
        "  Fix: download PBC_dataset_normal_DIB.zip by hand from Mendeley Data "
        "(doi:10.17632/snkd93bnjr.1), unzip it, and load the folder with "
        "leukosk.datasets.load_pbc('path/to/PBC_dataset_normal_DIB'); or put "
        f"the zip at {target} and call fetch_pbc() again.")


def _content_range(header):
    """(start, total) of a ``Content-Range: bytes START-END/TOTAL`` header."""
    try:
        unit, spec = header.split(" ", 1)
        span, total = spec.split("/")
        start = None if span == "*" else int(span.split("-")[0])
        return start, None if total == "*" else int(total)
    except (AttributeError, ValueError) as exc:
        raise _RangeRefused(f"unreadable Content-Range {header!r}") from exc


def _open_range(url, have, timeout):
    """``(response, start, total)`` for ``url`` asked from byte ``have`` on.

    ``start`` is the byte the body begins at (0 when the server ignores the
    range), ``total`` the archive's size if known; ``response`` is None when
    the ``have`` bytes already are the whole archive."""
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not have:
            raise
        _, total = _content_range(exc.headers.get("Content-Range", "bytes */*"))
        exc.close()
        if total == have:
            return None, have, total  # the part file is already complete
        raise _RangeRefused(f"range from byte {have} not satisfiable "
                            f"(archive size {total})") from None
    length = response.headers.get("Content-Length")
    if have and response.status == 206:
        start, total = _content_range(response.headers.get("Content-Range"))
        if start != have:
            response.close()
            raise _RangeRefused(f"asked for bytes from {have}, got them from {start}")
        if total is None and length is not None:
            total = have + int(length)
        return response, have, total
    # 200: everything from byte 0 (also when the server ignored the range)
    return response, 0, None if length is None else int(length)


def _download_once(url, part, timeout, progress):
    """Append the rest of ``url`` to ``part``; the archive's size if known."""
    response, have, total = _open_range(
        url, part.stat().st_size if part.exists() else 0, timeout)
    if response is None:
        return total
    with response, open(part, "ab" if have else "wb") as out, \
            progress(total, have) as bar:
        while True:
            try:
                chunk = response.read1(_CHUNK)  # what has arrived, kept on a cut
            except (http.client.HTTPException, ConnectionError,
                    socket.timeout, OSError) as exc:
                raise _Truncated(str(exc)) from exc
            if not chunk:
                break
            out.write(chunk)
            bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size != total:
        raise _Truncated(f"got {size} of {total} bytes")
    return total


def _check_archive(part):
    """Raise _Truncated unless ``part`` is a whole zip archive (its central
    directory sits at the very end, so a cut-off file has none)."""
    try:
        with zipfile.ZipFile(part) as archive:
            archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise _Truncated(f"the archive is incomplete ({exc})") from exc


def _progress_factory(verbose):
    from tqdm.auto import tqdm

    def progress(total, initial):
        return tqdm(total=total, initial=initial, unit="B", unit_scale=True,
                    desc="downloading PBC", disable=not verbose)
    return progress


def _download(url, target, *, timeout, retries, verbose):
    """Download ``url`` to ``target`` via ``target.part``, resuming after cuts.

    The part file becomes ``target`` only once it is a complete zip archive of
    the announced size; a server that ignores or garbles ranges makes it start
    over. The caller holds the lock on ``target``.
    """
    part = target.with_name(target.name + ".part")
    progress = _progress_factory(verbose)
    for attempt in range(retries + 1):
        try:
            _download_once(url, part, timeout, progress)
            _check_archive(part)
            os.replace(part, target)
            return target
        except _RangeRefused:
            part.unlink(missing_ok=True)  # start over from byte 0
        except _Truncated:
            pass
        except (urllib.error.URLError, socket.timeout, ConnectionError) as exc:
            raise ConnectionError(_offline_message(url, target, exc)) from exc
        if attempt < retries:
            time.sleep(min(2 ** attempt, 10) * 0.1)
    raise ConnectionError(
        f"the download of {url} kept breaking off after {retries + 1} attempts; "
        f"{part} keeps what arrived, so calling fetch_pbc() again resumes from "
        "there.")


def _safe_members(archive, destination):
    """Archive members, refusing any that would land outside ``destination``."""
    root = destination.resolve()
    for info in archive.infolist():
        name = PurePosixPath(info.filename)
        resolved = (destination / name).resolve()
        if name.is_absolute() or ".." in name.parts or not resolved.is_relative_to(root):
            raise ValueError(
                f"refusing to extract {info.filename!r}: it would be written "
                f"outside {destination}. The archive is corrupt or malicious.")
        yield info


def _find_dataset_root(folder):
    """The folder that holds the class subfolders inside an extraction."""
    for candidate in [folder / PBC_FOLDER, folder]:
        if candidate.is_dir() and any(
                (candidate / name).is_dir() for name in PBC_COUNTS):
            return candidate
    subdirs = [d for d in folder.iterdir() if d.is_dir()]
    if len(subdirs) == 1:
        return _find_dataset_root(subdirs[0])
    raise ValueError(f"no PBC class folders found in the archive (looked in {folder}).")


def _check_counts(root, expected):
    found = {name: sum(1 for f in (root / name).glob("*") if f.is_file()
                       and not f.name.startswith("."))
             for name in expected}
    wrong = {k: (found[k], v) for k, v in expected.items() if found[k] != v}
    if wrong:
        detail = ", ".join(f"{k}: {got} (expected {want})"
                           for k, (got, want) in wrong.items())
        raise ValueError(f"the extracted PBC dataset is incomplete or altered: "
                         f"{detail}. Delete it and download it again.")


def _check_expansion(archive, archive_path):
    """Refuse archives that would expand far beyond their own size."""
    declared = sum(info.file_size for info in archive.infolist())
    limit = min(_MAX_EXPANSION_RATIO * max(archive_path.stat().st_size, 1),
                _MAX_EXTRACTED_BYTES)
    if declared > limit:
        raise ValueError(
            f"refusing to extract {archive_path}: its members would take "
            f"{declared:,} bytes, more than {limit:,} ({_MAX_EXPANSION_RATIO}x "
            "the archive, at most 8 GiB). The archive is corrupt or malicious; "
            "delete it and download it again.")


def _extract(archive_path, data_home, expected_counts):
    """Extract into a temporary folder, verify, then move into place."""
    final = data_home / PBC_FOLDER
    remove_dead_temps(data_home, _STAGING)  # extractions a killed process left
    staging = writer_tempdir(data_home, _STAGING)
    try:
        with zipfile.ZipFile(archive_path) as archive:
            _check_expansion(archive, archive_path)
            archive.extractall(staging, members=list(_safe_members(archive, staging)))
        root = _find_dataset_root(staging)
        if expected_counts is not None:
            _check_counts(root, expected_counts)
        os.replace(root, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def fetch_pbc(data_home=None, *, url=PBC_URL, sha256=None,
              expected_counts=PBC_COUNTS, timeout=30.0, retries=5,
              verbose=True, **load_kwargs):
    """Download the PBC dataset (once) and load it with :func:`load_pbc`.

    Downloads ``PBC_dataset_normal_DIB.zip`` from its public Mendeley Data
    record (Acevedo et al. 2020, doi:10.17632/snkd93bnjr.1, CC BY 4.0) into
    ``data_home``, resuming an interrupted transfer, and extracts it into a
    temporary folder that is moved into place only when complete and
    verified. Later calls use the extracted folder without network.

    What is guaranteed: the archive is renamed into place only when it is a
    whole zip file of the size the server announced (a transfer cut without
    ``Content-Length`` resumes instead); a resumption whose ``Content-Range``
    does not start where the partial file ends starts over; a partial file
    that is already complete (HTTP 416) is used; concurrent calls (threads
    or processes) wait for one another on a lock file; members that would
    land outside ``data_home`` or expand to more than 20x the archive's size
    are refused.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Where to keep the archive and the dataset: default ``$LEUKOSK_DATA``,
        else ``~/leukosk_data``.
    url : str, default=PBC_URL
        The archive's address (override for a mirror).
    sha256 : str, default=None
        Expected SHA-256 of the archive. The public record publishes none, so
        by default the *content* is verified instead (``expected_counts``).
    expected_counts : dict or None, default=PBC_COUNTS
        Images expected per class folder after extraction (17,092 in all);
        ``None`` skips the check.
    timeout : float, default=30.0
        Seconds to wait for the server before giving up (offline machines
        fail fast with instructions).
    retries : int, default=5
        Resumptions after a transfer breaks off.
    verbose : bool, default=True
        Progress bars.
    **load_kwargs
        Passed to :func:`load_pbc` (``image_size``, ``drop_duplicates``, ...).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        As returned by :func:`load_pbc`.

    Raises
    ------
    ConnectionError
        The server is unreachable (with instructions to download by hand) or
        the transfer kept breaking off.
    ValueError
        Wrong checksum, an archive member that would escape ``data_home``,
        or extracted content that does not match ``expected_counts``.

    Examples
    --------
    >>> from leukosk.datasets import fetch_pbc
    >>> pbc = fetch_pbc(image_size=224)  # doctest: +SKIP
    >>> pbc.images.shape  # doctest: +SKIP
    (17092, 224, 224, 3)
    """
    data_home = get_data_home(data_home)
    folder = data_home / PBC_FOLDER
    if not folder.is_dir():
        with FileLock(data_home / f"{_ARCHIVE}.lock"):  # one fetch at a time
            if not folder.is_dir():  # another process may have finished it
                _fetch_archive(url, data_home, sha256=sha256, timeout=timeout,
                               retries=retries, verbose=verbose)
                _extract(data_home / _ARCHIVE, data_home, expected_counts)
    return load_pbc(folder, data_home=data_home, verbose=verbose, **load_kwargs)


def _fetch_archive(url, data_home, *, sha256, timeout, retries, verbose):
    archive = data_home / _ARCHIVE
    if not archive.is_file():
        _download(url, archive, timeout=timeout, retries=retries, verbose=verbose)
    if sha256 is not None and sha256_file(archive) != sha256.lower():
        bad = archive.with_name(archive.name + ".bad")
        os.replace(archive, bad)
        raise ValueError(
            f"the downloaded archive's SHA-256 is not {sha256}; it was moved "
            f"to {bad}. Check the url and the checksum, then try again.")
