"""Checkpoints that survive crashes: skorch's ``Checkpoint`` with atomic writes."""

import os
from pathlib import Path

from skorch.callbacks import Checkpoint

from ._persist import atomic_path

__all__ = ["AtomicCheckpoint", "checkpoint_files"]

_FILES = {"f_params": "params.pt", "f_optimizer": "optimizer.pt",
          "f_history": "history.json"}


def checkpoint_files(dirname):
    """The files a checkpoint in ``dirname`` consists of, keyed like skorch's."""
    return {key: Path(dirname) / name for key, name in _FILES.items()}


class AtomicCheckpoint(Checkpoint):
    """skorch :class:`~skorch.callbacks.Checkpoint` that never leaves a torn file.

    Each file (parameters, optimizer state, history) is written to a temporary
    file and moved into place, so an interrupted or crashing fit leaves the
    previous epoch's complete files on disk. Saving every epoch
    (``monitor=None``) keeps the *last* good state, which is what resuming
    needs. Unlike skorch's default, a failed save raises instead of only
    printing, so a full disk does not go unnoticed.

    Parameters
    ----------
    dirname : str or path-like
        Folder of the checkpoint files.
    **kwargs
        Passed to :class:`skorch.callbacks.Checkpoint`.
    """

    def __init__(self, dirname, monitor=None, f_params=_FILES["f_params"],
                 f_optimizer=_FILES["f_optimizer"], f_criterion=None,
                 f_history=_FILES["f_history"], **kwargs):
        super().__init__(monitor=monitor, f_params=f_params,
                         f_optimizer=f_optimizer, f_criterion=f_criterion,
                         f_history=f_history, dirname=dirname,
                         **kwargs)

    def _save_params(self, f, net, f_name, log_name):
        if not isinstance(f, (str, os.PathLike)):
            return super()._save_params(f, net, f_name, log_name)
        with atomic_path(f) as tmp:
            net.save_params(**{f_name: str(tmp)},
                            use_safetensors=self.use_safetensors)
        return None
