"""Downloading the PBC dataset archive: resumable, verified, extracted atomically."""

import hashlib
import http.client
import os
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from ._home import get_data_home
from ._pbc import load_pbc

__all__ = ["fetch_pbc", "PBC_URL", "PBC_COUNTS", "PBC_FOLDER"]

#: Public download of ``PBC_dataset_normal_DIB.zip`` (Mendeley Data,
#: doi:10.17632/snkd93bnjr.1, CC BY 4.0).
PBC_URL = ("https://data.mendeley.com/public-files/datasets/snkd93bnjr/files/"
           "2fc38728-2ae7-4a62-a857-032af82334c3/file_downloaded")
#: Images per class in the published dataset (17,092 in all).
PBC_COUNTS = {"basophil": 1218, "eosinophil": 3117, "erythroblast": 1551,
              "ig": 2895, "lymphocyte": 1214, "monocyte": 1420,
              "neutrophil": 3329, "platelet": 2348}
PBC_FOLDER = "PBC_dataset_normal_DIB"
_ARCHIVE = f"{PBC_FOLDER}.zip"
_CHUNK = 1 << 20


class _Truncated(Exception):
    """The server closed the connection before sending everything."""


def _offline_message(url, target, reason):
    return (
        f"could not download the PBC dataset from {url} ({reason}).\n"
        "  Fix: download PBC_dataset_normal_DIB.zip by hand from Mendeley Data "
        "(doi:10.17632/snkd93bnjr.1), unzip it, and load the folder with "
        "leukosk.datasets.load_pbc('path/to/PBC_dataset_normal_DIB'); or put "
        f"the zip at {target} and call fetch_pbc() again.")


def _download_once(url, part, timeout, progress):
    """Append the rest of ``url`` to ``part`` (HTTP Range); True when complete."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if have and response.status != 206:  # server ignored the range: restart
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with open(part, "ab" if have else "wb") as out, progress(total, have) as bar:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (http.client.HTTPException, ConnectionError,
                        socket.timeout, OSError) as exc:
                    raise _Truncated(str(exc)) from exc
                if not chunk:
                    break
                out.write(chunk)
                bar.update(len(chunk))
    if total is not None and part.stat().st_size < total:
        raise _Truncated(f"got {part.stat().st_size} of {total} bytes")
    return True


def _progress_factory(verbose):
    from tqdm.auto import tqdm

    def progress(total, initial):
        return tqdm(total=total, initial=initial, unit="B", unit_scale=True,
                    desc="downloading PBC", disable=not verbose)
    return progress


def _download(url, target, *, timeout, retries, verbose):
    """Download ``url`` to ``target`` via ``target.part``, resuming after cuts."""
    part = target.with_name(target.name + ".part")
    progress = _progress_factory(verbose)
    for attempt in range(retries + 1):
        try:
            _download_once(url, part, timeout, progress)
            os.replace(part, target)
            return target
        except _Truncated:
            if attempt == retries:
                raise ConnectionError(
                    f"the download of {url} kept breaking off after {retries + 1} "
                    f"attempts; {part} keeps what arrived, so calling fetch_pbc() "
                    "again resumes from there.") from None
            time.sleep(min(2 ** attempt, 10) * 0.1)
        except (urllib.error.URLError, socket.timeout, ConnectionError) as exc:
            raise ConnectionError(_offline_message(url, target, exc)) from exc
    raise AssertionError("unreachable")  # pragma: no cover


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


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


def _extract(archive_path, data_home, expected_counts):
    """Extract into a temporary folder, verify, then move into place."""
    final = data_home / PBC_FOLDER
    staging = Path(tempfile.mkdtemp(prefix=".pbc-extract-", dir=data_home))
    try:
        with zipfile.ZipFile(archive_path) as archive:
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
        archive = data_home / _ARCHIVE
        if not archive.is_file():
            _download(url, archive, timeout=timeout, retries=retries, verbose=verbose)
        if sha256 is not None and _sha256(archive) != sha256.lower():
            bad = archive.with_name(archive.name + ".bad")
            os.replace(archive, bad)
            raise ValueError(
                f"the downloaded archive's SHA-256 is not {sha256}; it was moved "
                f"to {bad}. Check the url and the checksum, then try again.")
        _extract(archive, data_home, expected_counts)
    return load_pbc(folder, data_home=data_home, verbose=verbose, **load_kwargs)
