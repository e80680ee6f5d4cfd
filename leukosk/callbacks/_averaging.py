"""Weight averaging (EMA) as a skorch callback, on torch's ``swa_utils``."""

import torch
from skorch.callbacks import Callback
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

__all__ = ["WeightAveraging"]


class WeightAveraging(Callback):
    """Keep an exponential moving average of the weights; use it after ``fit``.

    After every training batch the average is updated,
    ``avg = decay * avg + (1 - decay) * weights`` (batch-norm statistics
    included); when training ends the averaged weights replace the network's,
    so prediction, scoring and saving use them. Averaging smooths out the
    noise of the last steps of a schedule (Polyak & Juditsky 1992; Izmailov
    et al. 2018, "Averaging weights leads to wider optima"). Built on
    :class:`torch.optim.swa_utils.AveragedModel`.

    Parameters
    ----------
    decay : float, default=0.999
        Weight of the old average at each batch, in [0, 1). About
        ``1 / (1 - decay)`` batches contribute.

    Examples
    --------
    >>> import numpy as np
    >>> from leukosk import VGG19LeukocyteClassifier
    >>> from leukosk.callbacks import WeightAveraging
    >>> X = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    >>> clf = VGG19LeukocyteClassifier(
    ...     weights=None, image_size=32, max_epochs=1, verbose=0, random_state=0,
    ...     module__width=0.25, module__hidden_units=16,
    ...     callbacks=[("ema", WeightAveraging(decay=0.9))])
    >>> clf.fit(X, [0, 1] * 4).predict(X).shape
    (8,)
    """

    def __init__(self, decay=0.999):
        self.decay = decay

    def initialize(self):
        if not 0.0 <= float(self.decay) < 1.0:
            raise ValueError(f"decay={self.decay!r}: must lie in [0, 1).")
        self.averaged_ = None
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.averaged_ = AveragedModel(
            net.module_, multi_avg_fn=get_ema_multi_avg_fn(self.decay),
            use_buffers=True)

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        if training and self.averaged_ is not None:
            self.averaged_.update_parameters(net.module_)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        if self.averaged_ is None:
            return
        with torch.no_grad():
            averaged = self.averaged_.module.state_dict()
            for name, tensor in net.module_.state_dict().items():
                tensor.copy_(averaged[name])
        self.averaged_ = None
