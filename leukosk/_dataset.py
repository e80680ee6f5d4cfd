"""A torch ``Dataset`` over checked image inputs, for skorch's data loaders."""

import numpy as np
import torch

from ._images import decode_image, resize_batch

__all__ = ["ImageDataset"]


class ImageDataset(torch.utils.data.Dataset):
    """Images (an array or lazily decoded files) with optional targets.

    Items are ``(image, target)`` pairs where ``image`` is a CHW tensor in
    the input's dtype (``uint8`` stays ``uint8``, so only a quarter of the
    bytes of float travel to the device). Array images keep their size and
    are resized in a batch on the training device by the model; files are
    decoded when an item is requested and resized to ``image_size`` at once,
    because files of different sizes must stack into one batch.

    It exposes ``X`` and ``y`` like :class:`skorch.dataset.Dataset`, so
    skorch's splitting and scoring utilities work on it.

    Parameters
    ----------
    X : ndarray of shape (n, H, W, 3) or list of str
        Output of :func:`leukosk._images.check_images`.
    y : ndarray of shape (n,) of int, default=None
        Encoded class indices.
    image_size : int, default=224
        Side length file images are resized to.

    Examples
    --------
    >>> import numpy as np
    >>> from leukosk._dataset import ImageDataset
    >>> ds = ImageDataset(np.zeros((4, 10, 12, 3), np.uint8), np.arange(4))
    >>> image, target = ds[1]
    >>> image.shape, image.dtype, int(target)
    (torch.Size([3, 10, 12]), torch.uint8, 1)
    """

    def __init__(self, X, y=None, image_size=224):
        self.X = X
        self.y = y
        self.image_size = image_size

    def __len__(self):
        return len(self.X)

    def _image(self, i):
        if isinstance(self.X, np.ndarray):
            return torch.from_numpy(np.array(self.X[i])).permute(2, 0, 1)
        image = torch.from_numpy(decode_image(self.X[i])).permute(2, 0, 1)
        return resize_batch(image, self.image_size)

    def __getitem__(self, i):
        target = -1 if self.y is None else self.y[i]
        return self._image(i), torch.as_tensor(target, dtype=torch.int64)
