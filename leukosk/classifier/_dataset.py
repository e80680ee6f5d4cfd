"""A torch ``Dataset`` over checked image inputs, for skorch's data loaders."""

import warnings

import numpy as np
import torch
from skorch.dataset import ValidSplit
from skorch.utils import data_from_dataset, is_dataset

from ..utils._images import check_images, decode_image, resize_batch
from ..utils._labels import check_targets, encode

__all__ = ["ImageDataset", "DeviceBatches", "ImageInput", "in_memory", "fits_on_device",
           "split_targets"]


class ImageDataset(torch.utils.data.Dataset):
    """Images (an array or lazily decoded files) with optional targets.

    Items are ``(image, target)`` pairs, or ``(image, (target, weight))``
    with sample weights, or ``(image, (target, weight, mask))`` with a class
    mask (the classes the image may be), where ``image`` is a CHW tensor in the input's dtype
    (``uint8`` stays ``uint8``, so only a quarter of the bytes of float travel
    to the device) and ``target`` the encoded class index the loss needs.
    Array images keep their size and are resized in a batch on the training
    device by the model; files are decoded when an item is requested and
    resized to ``image_size`` at once, because files of different sizes must
    stack into one batch.

    It exposes ``X`` and ``y`` like :class:`skorch.dataset.Dataset`, ``y``
    being the class *labels* (as the user gave them), so that skorch's
    splitting and scikit-learn scorers see what ``predict`` returns.

    Parameters
    ----------
    X : ndarray of shape (n, H, W, 3) or list of str
        Output of :func:`leukosk.utils._images.check_images`.
    targets : ndarray of shape (n,) of int, default=None
        Encoded class indices.
    image_size : int, default=224
        Side length file images are resized to.
    labels : ndarray of shape (n,), default=None
        The labels ``targets`` encode (``y``); defaults to ``targets``.
    sample_weight : ndarray of shape (n,), default=None
        Weight of each image in the loss.
    class_mask : ndarray of shape (n, n_classes) of bool, default=None
        The classes each image may be (its source's); needs ``sample_weight``.

    Examples
    --------
    >>> import numpy as np
    >>> from leukosk.classifier._dataset import ImageDataset
    >>> ds = ImageDataset(np.zeros((4, 10, 12, 3), np.uint8), np.arange(4))
    >>> image, target = ds[1]
    >>> image.shape, image.dtype, int(target)
    (torch.Size([3, 10, 12]), torch.uint8, 1)
    """

    def __init__(self, X, targets=None, image_size=224, labels=None,
                 sample_weight=None, class_mask=None):
        self.X = X
        self.targets = targets
        self.image_size = image_size
        self.labels = labels
        self.sample_weight = sample_weight
        self.class_mask = class_mask

    @property
    def y(self):
        return self.targets if self.labels is None else self.labels

    def __len__(self):
        return len(self.X)

    def _image(self, i):
        if isinstance(self.X, np.ndarray):
            return torch.from_numpy(np.array(self.X[i])).permute(2, 0, 1)
        image = torch.from_numpy(decode_image(self.X[i])).permute(2, 0, 1)
        return resize_batch(image, self.image_size)

    def __getitem__(self, i):
        target = torch.as_tensor(-1 if self.targets is None else self.targets[i],
                                 dtype=torch.int64)
        if self.sample_weight is None:
            return self._image(i), target
        weight = torch.as_tensor(self.sample_weight[i], dtype=torch.float32)
        if self.class_mask is None:
            return self._image(i), (target, weight)
        return self._image(i), (target, weight, torch.as_tensor(self.class_mask[i]))

    def subset(self, index):
        """The images at ``index`` (an in-memory dataset stays in memory)."""
        def take(values):
            return None if values is None else np.asarray(values)[index]
        X = self.X[index] if isinstance(self.X, np.ndarray) else \
            [self.X[i] for i in np.asarray(index)]
        return ImageDataset(X, take(self.targets), self.image_size,
                            labels=take(self.labels),
                            sample_weight=take(self.sample_weight),
                            class_mask=take(self.class_mask))


def in_memory(dataset):
    """``dataset`` as an ImageDataset over an ndarray, or None if it is not one.

    A :class:`torch.utils.data.Subset` of one (skorch's validation split) is
    materialised as the selected rows.
    """
    if isinstance(dataset, torch.utils.data.Subset):
        inner = in_memory(dataset.dataset)
        return None if inner is None else inner.subset(np.asarray(dataset.indices))
    if isinstance(dataset, ImageDataset) and isinstance(dataset.X, np.ndarray):
        return dataset
    return None


def _read_only_tensor(array):
    """``torch.from_numpy`` without its warning for read-only arrays (memmaps).

    Safe because nothing writes to the result: batches are new tensors cut
    from it, and on a GPU it is only the source of one copy.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


#: The ``iterator_*`` options batching on the device honours.
DEVICE_BATCH_OPTIONS = frozenset({"shuffle", "batch_size", "drop_last"})


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
    >>> from leukosk.classifier._dataset import DeviceBatches, ImageDataset
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
            X, y = self.dataset.X, self.dataset.targets
            images = _read_only_tensor(np.ascontiguousarray(X)).to(self.device)
            y = np.full(len(X), -1) if y is None else np.asarray(y)
            targets = torch.as_tensor(y, dtype=torch.int64).to(self.device)
            extras = [torch.as_tensor(np.asarray(values), dtype=dtype, device=self.device)
                      for values, dtype in ((self.dataset.sample_weight, torch.float32),
                                            (self.dataset.class_mask, torch.bool))
                      if values is not None]
            self._tensors = images.permute(0, 3, 1, 2), targets, extras
        return self._tensors

    def _order(self):
        """This pass's batches of indices, drawn exactly as a DataLoader would.

        Iterating a DataLoader over the indices consumes the global RNG as one
        over the images does, so both give the same batches and the same model.
        """
        n = len(self.dataset)
        if not self.shuffle:  # no random draw at all (prediction stays pure)
            batches = list(torch.arange(n).split(self.batch_size))
            if self.drop_last and batches and len(batches[-1]) < self.batch_size:
                batches.pop()
        else:
            batches = list(torch.utils.data.DataLoader(
                range(n), batch_size=self.batch_size, shuffle=True,
                drop_last=self.drop_last))
        sizes = [len(b) for b in batches]
        order = torch.cat(batches).to(self.device) if batches else None
        return order, sizes

    def __iter__(self):
        images, targets, extras = self._on_device()
        order, sizes = self._order()
        start = 0
        for size in sizes:
            index = order[start:start + size]
            start += size
            if not extras:
                yield images[index], targets[index]
            else:
                yield images[index], (targets[index], *(e[index] for e in extras))


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


def split_targets(yi):
    """(targets, sample weights or None, class mask or None) of a batch's ``y``."""
    if isinstance(yi, (tuple, list)):
        return yi[0], yi[1], yi[2] if len(yi) > 2 else None
    return yi, None, None


class ImageInput:
    """skorch's data hooks for image inputs (a mixin of the classifier).

    ``X`` is an image array or a list of paths (checked by
    :func:`~leukosk.utils._images.check_images`), ``y`` the class labels; datasets
    are :class:`ImageDataset` (labels for skorch's splits and scorers,
    encoded targets for the loss); in-memory arrays are batched on the
    device (``data_on_device``); a validation set comes from ``validation``
    or skorch's ``train_split``.
    """

    def check_data(self, X, y):
        """No-op: inputs and labels are validated and encoded in ``fit``."""

    def get_dataset(self, X, y=None):
        """Wrap checked images (and labels) in an :class:`ImageDataset`."""
        if is_dataset(X):
            return X
        X = check_images(X, check_files=False)
        if y is None:
            return ImageDataset(X, image_size=self.decode_size_)
        return ImageDataset(X, encode(y, self.classes_), self.decode_size_,
                            labels=np.asarray(y))

    def get_iterator(self, dataset, training=False):
        """Batches cut on the device (``data_on_device``) or skorch's DataLoader.

        Prediction's DataLoader draws its seed from a generator of its own,
        never from the caller's global torch RNG.
        """
        arrays = self._device_batch_source(dataset, training)
        if arrays is None:
            if training or "generator" in self.get_params_for("iterator_valid"):
                return super().get_iterator(dataset, training=training)
            kwargs = self.get_params_for("iterator_valid")
            kwargs.setdefault("batch_size", self.batch_size)
            if kwargs["batch_size"] == -1:
                kwargs["batch_size"] = len(dataset)
            return self.iterator_valid(dataset, generator=torch.Generator(), **kwargs)
        kwargs = self.get_params_for("iterator_train" if training else "iterator_valid")
        batch_size = kwargs.get("batch_size", self.batch_size)
        if batch_size == -1:
            batch_size = len(arrays)
        return DeviceBatches(arrays, batch_size, shuffle=kwargs.get("shuffle", False),
                             device=self.device_, drop_last=kwargs.get("drop_last", False))

    def _device_batch_source(self, dataset, training):
        """The in-memory ImageDataset to batch on the device, or None."""
        option = self.data_on_device
        if option is False:
            return None
        arrays = in_memory(dataset)
        prefix = "iterator_train" if training else "iterator_valid"
        custom = sorted(set(self.get_params_for(prefix)) - DEVICE_BATCH_OPTIONS)
        loader = self.iterator_train if training else self.iterator_valid
        if option is True:
            if arrays is None:
                raise ValueError(
                    "data_on_device=True needs images in an in-memory array; "
                    "these are file paths or a custom dataset. Load them first "
                    "(leukosk.datasets.load_pbc) or use data_on_device='auto'.")
            if loader is not torch.utils.data.DataLoader or custom:
                what = (f"{prefix}={getattr(loader, '__name__', loader)}"
                        if loader is not torch.utils.data.DataLoader
                        else ", ".join(f"{prefix}__{k}" for k in custom))
                raise ValueError(
                    f"data_on_device=True cuts batches on the device, without a "
                    f"DataLoader, so it cannot honour {what} (it honours only "
                    f"{prefix}__shuffle, __batch_size and __drop_last). Use "
                    "data_on_device='auto' or False to batch with the DataLoader.")
            return arrays
        if (arrays is None or custom or loader is not torch.utils.data.DataLoader
                or not fits_on_device(arrays.X, self.device_)):
            return None
        return arrays

    def get_split_datasets(self, X, y=None, **fit_params):
        """Training and validation datasets according to ``validation``.

        A validation set from skorch's ``train_split`` (e.g.
        ``predefined_split(Dataset(X_val, y_val))``) may hold plain image
        arrays and labels; it is checked and encoded like ``fit``'s input.
        """
        if self.validation is None:
            train, valid = super().get_split_datasets(X, y, **fit_params)
            return train, None if valid is None else self._as_image_dataset(valid)
        dataset = self.get_dataset(X, y)
        if not isinstance(self.validation, (tuple, list)):
            split = ValidSplit(float(self.validation), stratified=True,
                               random_state=self.random_state)
            return split(dataset, y)
        X_val, y_val = self.validation
        X_val = check_images(X_val)
        encode(check_targets(y_val, len(X_val)), self.classes_, what="validation labels")
        return dataset, self.get_dataset(X_val, y_val)

    def _as_image_dataset(self, dataset):
        if isinstance(dataset, (ImageDataset, torch.utils.data.Subset)):
            return dataset
        X, y = data_from_dataset(dataset)
        X = check_images(X)
        y = check_targets(y, len(X))
        encode(y, self.classes_, what="validation labels")
        return self.get_dataset(X, y)

