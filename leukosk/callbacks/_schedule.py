"""The one-cycle learning-rate schedule as a skorch callback sized at fit time."""

from skorch.callbacks import LRScheduler
from torch.optim.lr_scheduler import OneCycleLR

__all__ = ["OneCycle"]


class OneCycle(LRScheduler):
    """torch's :class:`~torch.optim.lr_scheduler.OneCycleLR`, stepped per batch,
    its length taken from the fit itself.

    skorch's :class:`~skorch.callbacks.LRScheduler` needs ``total_steps`` up
    front, which depends on the training set's size; this one counts the
    batches of the first epoch and spans ``max_epochs`` of them (Smith &
    Topin 2019, "Super-convergence"). The rate rises from ``max_lr /
    div_factor`` to ``max_lr`` over the first ``pct_start`` of training, then
    anneals (cosine) to ``max_lr / final_div_factor``. Each parameter group
    peaks at ``max_lr`` times its share of ``lr`` (the classifier's head
    multiplier is kept). A resumed fit continues the schedule where the
    checkpoint left it.

    Parameters
    ----------
    max_lr : float
        The peak learning rate.
    pct_start : float, default=0.25
        Fraction of the steps spent rising.
    **kwargs
        Other arguments of :class:`~torch.optim.lr_scheduler.OneCycleLR`
        (``div_factor``, ``final_div_factor``, ``anneal_strategy``...).

    Examples
    --------
    >>> import numpy as np
    >>> from leukosk import VGG19LeukocyteClassifier
    >>> from leukosk.callbacks import OneCycle
    >>> X = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    >>> clf = VGG19LeukocyteClassifier(
    ...     weights=None, image_size=32, max_epochs=2, batch_size=4, verbose=0,
    ...     module__width=0.25, module__hidden_units=16, random_state=0,
    ...     callbacks=[("one_cycle", OneCycle(max_lr=1e-2))]).fit(X, [0, 1] * 4)
    >>> lrs = clf.history_[:, "batches", :, "event_lr"]
    >>> [len(epoch) for epoch in lrs], round(max(max(epoch) for epoch in lrs), 8)
    ([2, 2], 0.01)
    """

    def __init__(self, max_lr, pct_start=0.25, policy=OneCycleLR, step_every="batch",
                 **kwargs):
        # policy and step_every are fixed; they are parameters only so that
        # scikit-learn's clone (which passes every parameter back) works.
        if policy is not OneCycleLR or step_every != "batch":
            raise ValueError("OneCycle is OneCycleLR stepped every batch; use skorch's "
                             "LRScheduler for other schedules.")
        super().__init__(policy=policy, step_every=step_every, max_lr=max_lr,
                         pct_start=pct_start, **kwargs)

    def on_train_begin(self, net, **kwargs):
        self.lr_scheduler_ = None  # built at the first epoch, once its batches are known

    def on_epoch_begin(self, net, dataset_train=None, **kwargs):
        if self.lr_scheduler_ is not None:
            return
        per_epoch = len(net.get_iterator(dataset_train, training=True))
        total = per_epoch * max(net.max_epochs, 1)
        done = sum(len(row["batches"]) for row in net.history[:-1])
        kwargs = dict(self.kwargs)
        peak = kwargs.pop("max_lr")
        total = max(total, done + per_epoch, 4)
        # torch divides by the rise's length in steps: at least two of them
        kwargs["pct_start"] = min(max(kwargs["pct_start"], 2 / total), 0.5)
        base = net.lr
        max_lr = [peak * group["lr"] / base if base else peak
                  for group in net.optimizer_.param_groups]
        self.lr_scheduler_ = OneCycleLR(net.optimizer_, max_lr=max_lr,
                                        total_steps=total, last_epoch=done - 1,
                                        **kwargs)

    def on_batch_end(self, net, training, **kwargs):
        if not training or self.lr_scheduler_ is None:
            return
        self._record_last_lr(net, kind="batch")
        if self.lr_scheduler_.last_epoch + 1 < self.lr_scheduler_.total_steps:
            self._step(net, self.lr_scheduler_)  # past the cycle: the last rate stays
