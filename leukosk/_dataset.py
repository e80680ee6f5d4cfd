"""A torch ``Dataset`` over checked image inputs, for skorch's data loaders."""

import warnings

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


def _read_only_tensor(array):
    """``torch.from_numpy`` without its warning for read-only arrays (memmaps).

    Safe because nothing writes to the result: batches are new tensors cut
    from it, and on a GPU it is only the source of one copy.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


class DeviceBatches:
    """Mini-batches of an in-memory image array, held on the training device.

    The ``uint8`` images are copied to ``device`` once, on the first pass, and
    every batch is then an index into that tensor: no DataLoader workers, no
    per-batch collation and no per-batch host-to-device copy. On the CPU the
    array is used in place (no copy). Shuffling draws from torch's global CPU
    generator (which ``random_state`` seeds) exactly as a
    :class:`~torch.utils.data.DataLoader` would, so both give the same batches.

    It is an iterable like a :class:`torch.utils.data.DataLoader` (usable
    many times, one pass per epoch) yielding ``(images, targets)``, with
    images as an NCHW view of NHWC memory (channels-last layout).

    Parameters
    ----------
    dataset : ImageDataset
        Over an ndarray of shape (n, H, W, 3).
    batch_size : int
    shuffle : bool
    device : str
    drop_last : bool, default=False

    Examples
    --------
    >>> import numpy as np
    >>> from leukosk._dataset import DeviceBatches, ImageDataset
    >>> ds = ImageDataset(np.zeros((5, 8, 8, 3), np.uint8), np.arange(5))
    >>> [tuple(xb.shape) for xb, yb in DeviceBatches(ds, 2, False, "cpu")]
    [(2, 3, 8, 8), (2, 3, 8, 8), (1, 3, 8, 8)]
    """

    def __init__(self, dataset, batch_size, shuffle, device, drop_last=False):
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.device = device
        self.drop_last = drop_last
        self._tensors = None

    def __len__(self):
        n, b = len(self.dataset), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def _on_device(self):
        if self._tensors is None:
            X, y = self.dataset.X, self.dataset.y
            images = _read_only_tensor(np.ascontiguousarray(X)).to(self.device)
            y = np.full(len(X), -1) if y is None else np.asarray(y)
            targets = torch.as_tensor(y, dtype=torch.int64).to(self.device)
            self._tensors = images.permute(0, 3, 1, 2), targets
        return self._tensors

    def _order(self):
        """This pass's batches of indices, drawn exactly as a DataLoader would.

        Iterating a DataLoader over the indices consumes the global RNG as one
        over the images does, so both give the same batches and the same model.
        """
        loader = torch.utils.data.DataLoader(
            range(len(self.dataset)), batch_size=self.batch_size,
            shuffle=self.shuffle, drop_last=self.drop_last)
        batches = list(loader)
        sizes = [len(b) for b in batches]
        order = torch.cat(batches).to(self.device) if batches else None
        return order, sizes

    def __iter__(self):
        images, targets = self._on_device()
        order, sizes = self._order()
        start = 0
        for size in sizes:
            index = order[start:start + size]
            start += size
            yield images[index], targets[index]


def fits_on_device(X, device, fraction=0.25):
    """Whether the array ``X`` may be copied to ``device`` whole.

    Always on the CPU (nothing is copied); on a GPU if it takes at most
    ``fraction`` of the memory now free there.
    """
    device = torch.device(device)
    if device.type == "cpu":
        return True
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return X.nbytes <= fraction * free
