"""Test-time adaptation to a new lab without labels: AdaBN.

Batch norm keeps running estimates of each channel's mean and variance, taken
on the training images. On another lab's images (another stain, camera,
crop) those statistics are off, and every later layer sees shifted inputs.
AdaBN (Li, Wang, Shi, Hou & Liu, "Adaptive batch normalization for practical
domain adaptation", Pattern Recognition 80, 2018) re-estimates them on the
new lab's unlabelled images and changes nothing else.
"""

import torch
from torch import nn

from .utils._images import check_images, chw_batch

__all__ = ["adapt_batch_norm"]


def adapt_batch_norm(clf, X, *, batch_size=64):
    """Re-estimate a fitted classifier's batch-norm statistics on new images.

    The running mean and variance of every batch-norm layer are replaced by
    their average over ``X`` (unlabelled images of the new lab); weights,
    classes and everything else stay. Modifies ``clf`` in place.

    Parameters
    ----------
    clf : fitted VGG19LeukocyteClassifier
        A network with batch norm (``batch_norm=True``, as the shipped model).
    X : array of shape (n, H, W, 3) or sequence of image paths
        Images of the new lab; a few hundred are plenty.
    batch_size : int, default=64

    Returns
    -------
    clf
        The same classifier, adapted.

    Examples
    --------
    >>> import numpy as np
    >>> from leukosk import VGG19LeukocyteClassifier
    >>> from leukosk.adapt import adapt_batch_norm
    >>> rng = np.random.default_rng(0)
    >>> X = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    >>> clf = VGG19LeukocyteClassifier(weights=None, batch_norm=True, image_size=32,
    ...     max_epochs=1, verbose=0, module__width=0.25, module__hidden_units=16,
    ...     device="cpu").fit(X, [0, 1] * 4)
    >>> darker = (X // 2).astype(np.uint8)
    >>> adapt_batch_norm(clf, darker).predict(darker).shape
    (8,)
    """
    clf.check_is_fitted()
    X = check_images(X)
    module = clf._plain_module()
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        raise ValueError("the network has no batch norm (it was built with "
                         "batch_norm=False): there are no statistics to adapt.")
    was_training = module.training
    momenta = [m.momentum for m in norms]
    saved = [{k: v.clone() for k, v in m.state_dict().items()} for m in norms]
    module.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over the batches
        norm.train()
    try:
        with torch.no_grad():
            for start in range(0, len(X), batch_size):
                batch = chw_batch(X[start:start + batch_size])
                for images in (batch if isinstance(batch, list) else [batch]):
                    module(images.reshape(-1, *images.shape[-3:]).to(clf.device_))
    except BaseException:  # an interrupted adaptation keeps the old statistics
        for norm, state in zip(norms, saved):
            norm.load_state_dict(state)
        raise
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        module.train(was_training)
    return clf
