"""Checkpoints that survive crashes: one atomic unit per epoch, with a manifest.

skorch's :class:`~skorch.callbacks.Checkpoint` decides *when* to save (every
epoch by default, or on a monitored improvement); :class:`AtomicCheckpoint`
changes *how*: each checkpoint is a folder ``epoch-NNNN/`` written whole under
a temporary name and renamed into place, holding

* ``params.safetensors``: the network's tensors (no pickle);
* ``optimizer.pt``: the optimizer state (read back with
  ``torch.load(weights_only=True)``, which refuses anything but tensors);
* ``history.json``: the training history;
* ``manifest.json``, written last: the classes, the parameters that shape the
  network, the leukosk version, and each file's SHA-256.

Only then is ``checkpoint.json`` (the pointer to the newest folder) replaced,
atomically; older folders and temporary folders of killed writers are
removed. A crash at any moment leaves the previous checkpoint readable, and
:func:`load_checkpoint` refuses a checkpoint that does not match the
classifier (other classes, image size, network shape or data), naming the
difference.
"""

import contextlib
import hashlib
import json
import os
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import torch

from ..utils._files import (atomic_path, read_tensors, remove_dead_temps, sha256_file,
                            writer_tempdir)
from ._model_file import jsonable

__all__ = ["save_checkpoint", "load_checkpoint", "latest_checkpoint", "checkpoint_owner",
           "data_fingerprint"]

POINTER = "checkpoint.json"
FORMAT = "leukosk-checkpoint/2"
_FILES = ("params.safetensors", "optimizer.pt", "history.json")
_TMP_PREFIX = ".epoch-tmp-"
OWNER = ".fit-owner.json"
#: The lock a fit holds on its checkpoint folder while it runs.
LOCK = ".fit.lock"


def data_fingerprint(X, y):
    """What a checkpoint records of the data it was trained on: the number of
    images and a BLAKE2 digest of the images (or paths) and labels."""
    digest = hashlib.blake2b(digest_size=16)
    for item in ([X] if isinstance(X, np.ndarray) else X):  # an array, or a list of
        if hasattr(item, "numpy"):                            # paths, arrays, tensors
            item = item.detach().cpu().numpy()
        if isinstance(item, np.ndarray):  # its bytes: str() of an array abbreviates
            digest.update(f"{item.dtype.str}{item.shape}".encode())
            digest.update(np.ascontiguousarray(item).data)
        else:
            digest.update(str(item).encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    digest.update(b"\1")
    digest.update("\0".join(map(str, np.asarray(y).tolist())).encode("utf-8",
                                                                      "surrogatepass"))
    return {"n_images": len(y), "digest": digest.hexdigest()}


def _read_owner(path):
    """The owner record (pid, host, start time) for the message, or {}."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


@contextlib.contextmanager
def checkpoint_owner(dirname):
    """Own the checkpoint folder ``dirname`` for one fit, or refuse clearly.

    The fit holds an operating-system lock on ``.fit.lock`` in the folder
    (:mod:`filelock`) for as long as it runs; the system releases it when
    the process ends, killed or not, so a crashed fit never blocks the next.
    A second fit into the folder while the first runs (a clone under
    ``GridSearchCV(n_jobs=2)``, another process) raises
    :class:`BlockingIOError` instead of overwriting and pruning the first's
    checkpoints; ``.fit-owner.json`` (pid, host, start time, written
    atomically) lets the message name the fit that holds it.
    """
    from filelock import FileLock, Timeout

    folder = Path(dirname)
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(folder / LOCK, is_singleton=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        owner = _read_owner(folder / OWNER)
        held_by = (f" (pid {owner.get('pid')} on {owner.get('host')}, since "
                   f"{owner.get('since')})") if owner else ""
        raise BlockingIOError(
            f"checkpoint_dir {folder} is in use by another fit{held_by}: two fits "
            "writing one folder overwrite and prune each other's checkpoints, as "
            "clones of one estimator do under GridSearchCV(n_jobs>1). Give each fit "
            "its own checkpoint_dir (or none in a search), or wait for the other "
            "fit to end.") from None
    try:
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        with atomic_path(folder / OWNER) as tmp:
            tmp.write_text(json.dumps(record))
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            (folder / OWNER).unlink()
        lock.release()


def _shaping(net):
    """What shapes the network's tensors and the meaning of its inputs."""
    settings = net.network_settings()
    shape = {"batch_norm": settings["batch_norm"], "image_size": settings["image_size"]}
    shape.update({f"module__{k}": jsonable(v) for k, v in sorted(settings["module"].items())})
    return shape


def _remove_stale(folder, keep):
    """Older checkpoints, and what killed writers left."""
    for path in folder.glob("epoch-*"):
        if path.name != keep:
            shutil.rmtree(path, ignore_errors=True)
    remove_dead_temps(folder, _TMP_PREFIX)


def _write_files(net, folder):
    from safetensors.torch import save_file

    from .._version import __version__

    module = net._plain_module()
    save_file({k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()},
              str(folder / "params.safetensors"))
    torch.save(net.optimizer_.state_dict(), folder / "optimizer.pt")
    net.history.to_file(str(folder / "history.json"))
    manifest = {"format": FORMAT, "leukosk_version": __version__,
                "epoch": len(net.history),
                "classes": np.asarray(net.classes_).tolist(),
                "model": _shaping(net),
                "data": getattr(net, "_checkpoint_data", None),
                "sha256": {name: sha256_file(folder / name) for name in _FILES}}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    for path in folder.iterdir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())


def save_checkpoint(net, dirname):
    """Write ``net``'s state as the newest checkpoint in ``dirname``, atomically."""
    folder = Path(dirname)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"epoch-{len(net.history):04d}"
    tmp = writer_tempdir(folder, _TMP_PREFIX)
    try:
        _write_files(net, tmp)
        shutil.rmtree(folder / name, ignore_errors=True)  # a stale one, not the pointer's
        os.rename(tmp, folder / name)
        with atomic_path(folder / POINTER) as pointer:
            pointer.write_text(json.dumps({"format": FORMAT, "latest": name}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _remove_stale(folder, keep=name)


def latest_checkpoint(dirname):
    """The folder the pointer in ``dirname`` names, or None if there is none."""
    pointer = Path(dirname) / POINTER
    if not pointer.is_file():
        return None
    try:
        name = json.loads(pointer.read_text())["latest"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"the checkpoint pointer {pointer} is damaged ({exc}); "
                         "delete the folder or use another checkpoint_dir.") from exc
    return Path(dirname) / name


def _read_manifest(folder):
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        if manifest.get("format") != FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}")
        for name in _FILES:
            if sha256_file(folder / name) != manifest["sha256"][name]:
                raise ValueError(f"{name} does not match its checksum")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"the checkpoint {folder} is incomplete or damaged ({exc}); "
                         "delete it or use another checkpoint_dir.") from exc
    return manifest


def _check_matches(net, manifest, folder):
    classes = np.asarray(net.classes_).tolist()
    if manifest["classes"] != classes:
        raise ValueError(
            f"cannot resume from {folder}: it was trained for classes "
            f"{manifest['classes']}, this fit has {classes}. Use another "
            "checkpoint_dir, or resume=False to start again.")
    ours = _shaping(net)
    different = sorted(k for k in set(ours) | set(manifest["model"])
                       if ours.get(k) != manifest["model"].get(k))
    if different:
        detail = ", ".join(f"{k}={manifest['model'].get(k)!r} there, {ours.get(k)!r} here"
                           for k in different)
        raise ValueError(f"cannot resume from {folder}: {detail}. Use the same "
                         "settings, another checkpoint_dir, or resume=False.")
    theirs, mine = manifest.get("data"), getattr(net, "_checkpoint_data", None)
    if theirs and mine and theirs != mine:
        raise ValueError(
            f"cannot resume from {folder}: it was trained on other data "
            f"({theirs['n_images']} images, fingerprint {theirs['digest'][:12]}; this "
            f"fit has {mine['n_images']} images, fingerprint {mine['digest'][:12]}), "
            "as when clones (cross-validation folds) share a checkpoint_dir. Use the "
            "same images and labels, one checkpoint_dir per fit, or resume=False.")


def load_checkpoint(net, dirname):
    """Load the newest checkpoint in ``dirname`` into the initialised ``net``.

    Returns
    -------
    int or None
        The number of epochs it holds; None if ``dirname`` has no checkpoint.

    Raises
    ------
    ValueError
        The checkpoint is damaged or incomplete, or was made for other
        classes or another network shape (the message names the difference).
    """
    from skorch.history import History

    folder = latest_checkpoint(dirname)
    if folder is None:
        if any(Path(dirname, old).is_file() for old in ("params.pt", "history.json")):
            raise ValueError(
                f"{dirname} holds a checkpoint of an older leukosk (no "
                f"{POINTER}); it cannot be checked, so it is not resumed. Delete "
                "it, or use another checkpoint_dir.")
        return None
    manifest = _read_manifest(folder)
    _check_matches(net, manifest, folder)
    fix = "Delete it, or use another checkpoint_dir."
    net._plain_module().load_state_dict(
        read_tensors(folder / "params.safetensors", what="checkpoint file", fix=fix))
    net.optimizer_.load_state_dict(
        read_tensors(folder / "optimizer.pt", what="checkpoint file", fix=fix))
    net.history = History.from_file(str(folder / "history.json"))
    return manifest["epoch"]
