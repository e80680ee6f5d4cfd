"""Checkpointing as a skorch callback: one atomic folder per epoch (see io)."""

from skorch.callbacks import Checkpoint

from ..io._checkpoint import save_checkpoint

__all__ = ["AtomicCheckpoint"]


class AtomicCheckpoint(Checkpoint):
    """skorch :class:`~skorch.callbacks.Checkpoint` writing one atomic unit.

    Each checkpoint is a complete folder renamed into place, then named in
    ``checkpoint.json``; a crash or a full disk mid-write leaves the previous
    checkpoint intact, and a failed save raises (skorch's default only
    prints). Saving every epoch (``monitor=None``) keeps the *last* good
    state, which is what resuming needs.

    Parameters
    ----------
    dirname : str or path-like
        Folder of the checkpoints.
    monitor : str, callable or None, default=None
        When to save, as in skorch (``None``: every epoch).
    **kwargs
        Passed to :class:`skorch.callbacks.Checkpoint`.
    """

    def __init__(self, dirname, monitor=None, **kwargs):
        super().__init__(monitor=monitor, dirname=dirname, f_params=None,
                         f_optimizer=None, f_criterion=None, f_history=None,
                         **kwargs)

    def save_model(self, net):
        save_checkpoint(net, self.dirname)
