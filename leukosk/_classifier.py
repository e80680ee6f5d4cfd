"""``VGG19LeukocyteClassifier``: skorch's NeuralNetClassifier for cell images.

This module is glue only: parameters, label encoding, device and seed handling
around skorch's training loop. The network lives in ``_vgg.py``, weights in
``_weights.py``, input checking in ``_images.py``, files in ``_persist.py``.
"""

import contextlib
import inspect
import numbers
import os

import numpy as np
import torch
from skorch import NeuralNet, NeuralNetClassifier
from skorch.callbacks import (EpochScoring, EpochTimer, PassthroughScoring,
                              PrintLog, ProgressBar)
from skorch.dataset import ValidSplit
from skorch.history import History
from skorch.utils import is_dataset, to_device
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, column_or_1d

from ._augment import AugmentedImages, RandomReflectRotate
from ._checkpoint import AtomicCheckpoint, checkpoint_files
from ._dataset import DeviceBatches, ImageDataset, fits_on_device
from ._images import check_images
from ._persist import read_model_file, save_model_file
from ._precision import amp_dtype, autocast
from ._runtime import preserved_rng, resolve_device, seeded
from ._vgg import HEAD_PREFIX, LeukocyteVGG

__all__ = ["VGG19LeukocyteClassifier"]


def _accuracy(net, X, y):
    """Accuracy on encoded targets, from (cached) network outputs."""
    proba = NeuralNet.predict_proba(net, X)
    return float(np.mean(proba.argmax(axis=1) == np.asarray(y)))


def _accepts(func, name):
    try:
        return name in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return True


def _param_groups(named_params, lr, weight_decay, head_lr_multiplier):
    """MATLAB-style groups: head at ``lr * multiplier``; no L2 on biases."""
    groups = {}
    for name, param in named_params:
        if not param.requires_grad:
            continue
        head = name.startswith(HEAD_PREFIX)
        decay = param.ndim > 1
        group = groups.setdefault((head, decay), {
            "params": [],
            "lr": lr * head_lr_multiplier if head else lr,
            "weight_decay": weight_decay if decay else 0.0,
        })
        group["params"].append(param)
    return list(groups.values())


def _array_dataset(dataset):
    """``dataset`` as an ImageDataset over an ndarray, or None if it is not one.

    A :class:`torch.utils.data.Subset` of one (skorch's validation split) is
    materialised as the selected rows.
    """
    if isinstance(dataset, torch.utils.data.Subset):
        inner = _array_dataset(dataset.dataset)
        if inner is None:
            return None
        index = np.asarray(dataset.indices)
        y = None if inner.y is None else np.asarray(inner.y)[index]
        return ImageDataset(inner.X[index], y, image_size=inner.image_size)
    if isinstance(dataset, ImageDataset) and isinstance(dataset.X, np.ndarray):
        return dataset
    return None


class VGG19LeukocyteClassifier(NeuralNetClassifier):
    """Leukocyte image classifier: ImageNet VGG-19 transfer learning.

    A scikit-learn classifier (a
    :class:`skorch.NeuralNetClassifier <skorch.classifier.NeuralNetClassifier>`)
    over torchvision's VGG-19 whose last fully connected layer is replaced by one
    with ``len(classes_)`` outputs, as in Jarjees, Sheet & Ahmed (2022). The
    defaults are that paper's recipe, which follows MATLAB's
    transfer-learning defaults: SGD with momentum 0.9, learning rate 1e-4 (the
    new layer learns 20x faster), L2 1e-4 on weights, batch size 10,
    10 epochs, 224x224 input made by resizing the whole image, ImageNet
    mean/std normalisation.

    Parameters
    ----------
    weights : str, path-like, torchvision WeightsEnum or None, default="IMAGENET1K_V1"
        Initial weights of the network except the new last layer.
        ``"IMAGENET1K_V1"`` (the paper's transfer learning) or any member of
        :class:`torchvision.models.VGG19_Weights` (``VGG19_BN_Weights`` when
        ``batch_norm=True``) is loaded through torchvision's weights API and
        the torch hub cache, so a file at
        ``$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth`` works offline; a
        path loads a local state dict in torchvision's VGG-19 layout
        (``.pth``/``.pt`` via ``torch.load(weights_only=True)``, or
        ``.safetensors``); ``None`` initialises randomly. Missing weights
        raise :class:`leukosk.WeightsUnavailableError` at the start of
        ``fit``.
    batch_norm : bool, default=False
        Use VGG-19 with batch normalisation (``torchvision.models.vgg19_bn``),
        which trains far better from scratch. The paper uses plain VGG-19.
    image_size : int, default=224
        Images are resized (whole image, bilinear with antialiasing, no crop)
        to ``image_size x image_size`` before the network; VGG-19's ImageNet
        input size is 224. At least 32.
    head_lr_multiplier : float, default=20.0
        Learning-rate factor of the new last layer, as MATLAB's
        ``WeightLearnRateFactor``/``BiasLearnRateFactor`` of 20 in its
        transfer-learning recipe.
    freeze_features : bool, default=False
        Keep the convolutional layers fixed (feature-extraction mode); only
        the fully connected layers train.
    augment : None or RandomReflectRotate, default=None
        Augment every training batch on the training device, freshly each
        epoch; prediction is never augmented. The paper's augmentation is
        ``RandomReflectRotate()`` (random mirrors, rotation 0-360 degrees). A
        :class:`~leukosk.RandomReflectRotate` step before the classifier in a
        pipeline does the same.
    tta : bool, default=False
        Test-time augmentation: ``predict_proba`` (and so ``predict`` and
        ``score``) average the probabilities of the 8 symmetries of the
        square (4 rotations by 90 degrees, with and without mirroring), which
        need no interpolation. Costs 8 forward passes.
    validation : None, float or tuple (X_val, y_val), default=None
        Validation during ``fit``: ``None`` for none (so ``GridSearchCV`` and
        ``cross_val_score`` use all of each training fold); a fraction in
        (0, 1) held out, stratified by class, with ``random_state``; or a
        given ``(X_val, y_val)``. Validation loss and accuracy are then
        recorded in ``history_`` next to the training ones. Use either this
        or skorch's ``train_split``, not both.
    random_state : None, int or numpy.random.RandomState, default=None
        Seeds weight initialisation, dropout, shuffling and the validation
        split. Two CPU fits with the same integer give identical models. The
        caller's global torch RNG state is left as it was.
    checkpoint_dir : None or path-like, default=None
        If given, the parameters, optimizer state and history are written
        there (atomically) after every epoch, so an interrupted fit leaves the
        last completed epoch on disk.
    resume : bool, default=False
        With ``checkpoint_dir``: if a checkpoint is there, ``fit`` loads it and
        trains only the epochs still missing to reach ``max_epochs``.
    device : str, default="auto"
        ``"auto"`` trains on CUDA when available, else on the CPU; ``"cpu"``,
        ``"cuda"`` or ``"cuda:N"`` force one (CUDA where there is none is an
        error).
    amp : bool or "bfloat16", default=False
        Mixed precision: run the network under bfloat16 autocast for training
        and prediction (outputs and the loss stay float32). Much faster on
        GPUs from Ampere on and on CPUs with AVX512-BF16 or AMX; no loss
        scaling is needed. float16 is not offered.
    channels_last : bool, default=False
        Channels-last (NHWC) memory layout for weights and activations, which
        the fast convolution kernels prefer; use it with ``amp``.
    data_on_device : "auto" or bool, default="auto"
        For in-memory image arrays: copy the ``uint8`` images to the training
        device once and cut batches there, instead of a
        :class:`~torch.utils.data.DataLoader` collating and copying every
        batch. ``"auto"`` does so when ``X`` is an array, no ``iterator_*``
        options other than ``shuffle``/``batch_size`` are set, and the array
        takes at most a quarter of the free GPU memory. File-path inputs always
        stream through the DataLoader (set ``iterator_train__num_workers``).
    lr : float, default=1e-4
        Learning rate (MATLAB's ``InitialLearnRate`` in the paper's recipe).
    max_epochs : int, default=10
        Training epochs.
    batch_size : int, default=10
        Mini-batch size for training and prediction.
    optimizer : torch optimizer class, default=torch.optim.SGD
        Configure it with ``optimizer__*`` parameters.
    optimizer__momentum : float, default=0.9
        Used by optimizers that take ``momentum`` (SGD, RMSprop); ignored by
        those that do not (Adam, AdamW), so switching optimizer needs no
        other change.
    optimizer__weight_decay : float, default=1e-4
        L2 factor, applied to weights but not biases (MATLAB's default
        ``BiasL2Factor`` is 0).
    iterator_train__shuffle : bool, default=True
        Shuffle the training data every epoch.
    module : torch module class, default=LeukocyteVGG
        The network. ``module__dropout=...`` (default 0.5) and
        ``module__hidden_units=...`` (default 4096; e.g. 256 for a much
        faster from-scratch CPU model, with pretrained weights then only in
        the convolutional layers) reach its constructor. From scratch with
        256 hidden units, ``module__dropout=0`` learned several times faster
        than 0.5 in our CPU runs (see the reproducing page).
    criterion : torch loss class, default=torch.nn.CrossEntropyLoss
    train_split : None or callable, default=None
        skorch's general split mechanism (e.g. ``skorch.dataset.ValidSplit``);
        prefer ``validation``.
    verbose : int, default=1
        Print a per-epoch table and show a progress bar; 0 is silent.
    **kwargs
        Any other parameter of
        :class:`skorch.NeuralNetClassifier <skorch.classifier.NeuralNetClassifier>`,
        with skorch's prefix routing (``iterator_train__num_workers=4``,
        ``callbacks=[...]``, ``classes=[...]``, ...).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels seen in ``fit`` (strings or integers, sorted), or the
        ``classes`` parameter.
    module_ : LeukocyteVGG
        The trained network.
    history_ : skorch.history.History
        Per-epoch ``train_loss``, ``train_acc`` (and ``valid_loss``,
        ``valid_acc`` with validation), per-batch losses, durations.

    See Also
    --------
    skorch.classifier.NeuralNetClassifier : the base class and its parameters.

    Notes
    -----
    ``n_features_in_`` is not defined: the classifier accepts images of any
    height and width and resizes them, so there is no fixed feature count.

    References
    ----------
    .. [1] M. S. Jarjees, S. S. M. Sheet, B. T. Ahmed, "Leukocytes
       identification using augmentation and transfer learning based
       convolution neural network", TELKOMNIKA 20(2), 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from leukosk import VGG19LeukocyteClassifier
    >>> rng = np.random.default_rng(0)
    >>> X = rng.integers(0, 256, size=(8, 40, 40, 3), dtype=np.uint8)
    >>> y = np.array(["basophil", "platelet"] * 4)
    >>> clf = VGG19LeukocyteClassifier(weights=None, image_size=32,
    ...                                max_epochs=1, verbose=0, random_state=0)
    >>> clf.fit(X, y).classes_
    array(['basophil', 'platelet'], dtype='<U8')
    >>> clf.predict(X[:2]).shape, clf.predict_proba(X[:2]).shape
    ((2,), (2, 2))
    """

    def __init__(
        self,
        weights="IMAGENET1K_V1",
        *,
        batch_norm=False,
        image_size=224,
        head_lr_multiplier=20.0,
        freeze_features=False,
        augment=None,
        tta=False,
        validation=None,
        random_state=None,
        checkpoint_dir=None,
        resume=False,
        device="auto",
        amp=False,
        channels_last=False,
        data_on_device="auto",
        lr=1e-4,
        max_epochs=10,
        batch_size=10,
        optimizer=torch.optim.SGD,
        optimizer__momentum=0.9,
        optimizer__weight_decay=1e-4,
        iterator_train__shuffle=True,
        module=LeukocyteVGG,
        criterion=torch.nn.CrossEntropyLoss,
        train_split=None,
        verbose=1,
        **kwargs,
    ):
        super().__init__(
            module,
            criterion=criterion,
            optimizer=optimizer,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=batch_size,
            train_split=train_split,
            device=device,
            verbose=verbose,
            optimizer__momentum=optimizer__momentum,
            optimizer__weight_decay=optimizer__weight_decay,
            iterator_train__shuffle=iterator_train__shuffle,
            **kwargs,
        )
        self.weights = weights
        self.batch_norm = batch_norm
        self.image_size = image_size
        self.head_lr_multiplier = head_lr_multiplier
        self.freeze_features = freeze_features
        self.augment = augment
        self.tta = tta
        self.validation = validation
        self.random_state = random_state
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume
        self.amp = amp
        self.channels_last = channels_last
        self.data_on_device = data_on_device

    # ------------------------------------------------------------------
    # scikit-learn / skorch plumbing
    # ------------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # X is a 4-D image array or a list of file paths, never a 2-D table.
        tags.input_tags.two_d_array = False
        tags.classifier_tags.poor_score = True
        return tags

    def _get_param_names(self):
        # skorch lists every non-fitted attribute, including its private
        # ``_params_to_validate`` bookkeeping; parameters never start with "_".
        return [name for name in super()._get_param_names()
                if not name.startswith("_")]

    @property
    def _default_callbacks(self):
        callbacks = [
            ("epoch_timer", EpochTimer()),
            ("train_loss", PassthroughScoring(name="train_loss", on_train=True)),
            ("train_acc", EpochScoring(_accuracy, name="train_acc",
                                       lower_is_better=False, on_train=True)),
            ("valid_loss", PassthroughScoring(name="valid_loss")),
            ("valid_acc", EpochScoring(_accuracy, name="valid_acc",
                                       lower_is_better=False)),
        ]
        if isinstance(self.checkpoint_dir, (str, os.PathLike)):
            callbacks.append(("checkpoint", AtomicCheckpoint(self.checkpoint_dir)))
        callbacks.append(("print_log", PrintLog()))
        if np.ndim(self.verbose) == 0 and self.verbose:  # set_params may pass junk
            callbacks.append(("progress_bar", ProgressBar()))
        return callbacks

    @contextlib.contextmanager
    def _concrete_device(self):
        """Within the block, ``self.device`` is a real torch device string.

        skorch moves tensors with ``self.device``; the ``"auto"`` parameter is
        resolved here for the duration and restored afterwards, so
        ``get_params()`` keeps returning what the user passed.
        """
        requested = self.device
        resolved = resolve_device(requested)
        if resolved == requested:
            yield resolved
            return
        self.device = resolved
        try:
            yield resolved
        finally:
            self.device = requested

    def initialize(self):
        """Initialise module, criterion, optimizer and callbacks (skorch)."""
        self._check_params()
        with self._concrete_device() as device:
            amp_dtype(self.amp, device)  # fail before building the network
            return super().initialize()

    def _plain_module(self):
        """``module_`` itself, or the module inside it when ``compile=True``."""
        return getattr(self.module_, "_orig_mod", self.module_)

    def _check_params(self):
        if not isinstance(self.image_size, numbers.Integral) or self.image_size < 32:
            raise ValueError(
                f"image_size={self.image_size!r}: must be an integer >= 32 "
                "(VGG-19 halves the resolution five times); the paper uses 224.")
        if not isinstance(self.checkpoint_dir, (str, os.PathLike, type(None))):
            raise TypeError(f"checkpoint_dir={self.checkpoint_dir!r}: pass a "
                            "folder path or None.")
        if self.resume and self.checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir=<folder> to "
                             "resume from.")
        if self.validation is not None and self.train_split is not None:
            raise ValueError("set either validation=... or skorch's "
                             "train_split=..., not both.")
        if self.augment is not None and not isinstance(self.augment,
                                                       RandomReflectRotate):
            raise TypeError(f"augment={self.augment!r}: pass None or a "
                            "leukosk.RandomReflectRotate(...).")
        if self.data_on_device not in ("auto", True, False):
            raise ValueError(f"data_on_device={self.data_on_device!r}: use "
                             "'auto', True or False.")
        if self.head_lr_multiplier < 0:
            raise ValueError(f"head_lr_multiplier={self.head_lr_multiplier!r} "
                             "must be >= 0.")

    def initialize_module(self):
        """Build :class:`LeukocyteVGG` for ``len(classes_)`` classes."""
        skip_pretrained = getattr(self, "_skip_pretrained_", False)
        kwargs = {
            "n_classes": len(self.classes_),
            "weights": None if skip_pretrained else self.weights,
            "batch_norm": self.batch_norm,
            "image_size": self.image_size,
            "freeze_features": self.freeze_features,
            "progress": bool(self.verbose),
            "channels_last": bool(self.channels_last),
        }
        kwargs.update(self.get_params_for("module"))
        self.module_ = self.module(**kwargs)
        return self

    def initialize_optimizer(self, triggered_directly=None):
        """Optimizer with the head learning-rate multiplier and no bias L2."""
        _, kwargs = self.get_params_for_optimizer("optimizer", [])
        if not _accepts(self.optimizer, "momentum"):
            kwargs.pop("momentum", None)  # the SGD default; Adam & co. have none
        lr = kwargs.pop("lr")
        weight_decay = kwargs.pop("weight_decay", 0.0)
        groups = _param_groups(self.get_all_learnable_params(), lr,
                               weight_decay, self.head_lr_multiplier)
        self.optimizer_ = self.optimizer(groups, lr=lr, **kwargs)
        return self

    def check_data(self, X, y):
        """No-op: inputs and labels are validated and encoded in ``fit``."""

    def get_dataset(self, X, y=None):
        """Wrap checked images (and encoded targets) in an ImageDataset."""
        if is_dataset(X):
            return X
        if isinstance(X, AugmentedImages):
            X = X.images
        return ImageDataset(check_images(X, check_files=False), y,
                            image_size=self.image_size)

    def get_iterator(self, dataset, training=False):
        """Batches cut on the device (``data_on_device``) or skorch's DataLoader."""
        arrays = self._device_batch_source(dataset, training)
        if arrays is None:
            return super().get_iterator(dataset, training=training)
        kwargs = self.get_params_for("iterator_train" if training else "iterator_valid")
        batch_size = kwargs.get("batch_size", self.batch_size)
        if batch_size == -1:
            batch_size = len(arrays)
        return DeviceBatches(arrays, batch_size, shuffle=kwargs.get("shuffle", False),
                             device=self.device)

    def _device_batch_source(self, dataset, training):
        """The in-memory ImageDataset to batch on the device, or None."""
        option = self.data_on_device
        if option is False:
            return None
        arrays = _array_dataset(dataset)
        if option is True:
            if arrays is None:
                raise ValueError(
                    "data_on_device=True needs images in an in-memory array; "
                    "these are file paths or a custom dataset. Load them first "
                    "(leukosk.datasets.load_pbc) or use data_on_device='auto'.")
            return arrays
        prefix = "iterator_train" if training else "iterator_valid"
        custom = set(self.get_params_for(prefix)) - {"shuffle", "batch_size"}
        loader = self.iterator_train if training else self.iterator_valid
        if (arrays is None or custom or loader is not torch.utils.data.DataLoader
                or not fits_on_device(arrays.X, self.device)):
            return None
        return arrays

    def get_split_datasets(self, X, y=None, **fit_params):
        """Training and validation datasets according to ``validation``."""
        if self.validation is None:
            return super().get_split_datasets(X, y, **fit_params)
        dataset = self.get_dataset(X, y)
        if isinstance(self.validation, numbers.Real):
            if not 0.0 < self.validation < 1.0:
                raise ValueError(f"validation={self.validation!r}: a fraction "
                                 "must lie strictly between 0 and 1.")
            split = ValidSplit(float(self.validation), stratified=True,
                               random_state=self.random_state)
            return split(dataset, y)
        if not (isinstance(self.validation, (tuple, list))
                and len(self.validation) == 2):
            raise TypeError("validation must be None, a fraction, or a tuple "
                            f"(X_val, y_val); got {type(self.validation).__name__}.")
        X_val, y_val = self.validation
        X_val = check_images(X_val)
        y_val = self._encode(y_val, len(X_val), what="validation labels")
        return dataset, self.get_dataset(X_val, y_val)

    # ------------------------------------------------------------------
    # labels
    # ------------------------------------------------------------------
    def _learn_classes(self, y, n_samples):
        y = self._check_targets(y, n_samples)
        classes = np.unique(y) if self.classes is None else np.asarray(self.classes)
        if len(classes) < 2:
            raise ValueError(
                f"y has a single class ({classes.tolist()[0]!r}); a classifier needs at "
                "least two. Check that the labels were read correctly.")
        self.classes_inferred_ = classes
        return self._encode(y, n_samples)

    @staticmethod
    def _check_targets(y, n_samples):
        if y is None:
            raise ValueError("y is required: pass the class label of each image.")
        y = column_or_1d(y, warn=True)
        check_consistent_length(np.empty(n_samples), y)
        check_classification_targets(y)
        return y

    def _encode(self, y, n_samples, what="y"):
        y = self._check_targets(y, n_samples)
        index = {label: i for i, label in enumerate(self.classes_.tolist())}
        unknown = sorted({str(v) for v in y.tolist() if v not in index})
        if unknown:
            raise ValueError(
                f"{what} contain(s) label(s) {unknown[:10]} that the classifier "
                f"does not know; known classes_ are {self.classes_.tolist()}. "
                "Check spelling and case, or refit with all classes (or pass "
                "classes=[...]).")
        return np.fromiter((index[v] for v in y.tolist()), dtype=np.int64,
                           count=len(y))

    # ------------------------------------------------------------------
    # fitting
    # ------------------------------------------------------------------
    def fit(self, X, y, **fit_params):
        """Train the network on images ``X`` with labels ``y``.

        Parameters
        ----------
        X : array of shape (n, H, W, 3) or sequence of image paths
            ``uint8`` (0-255) or float (0-1) RGB images of any one size, or
            file paths decoded lazily batch by batch.
        y : array-like of shape (n,)
            Class labels, strings or integers.
        **fit_params
            Passed to skorch (forward arguments, split parameters).

        Returns
        -------
        self
        """
        X, augmenter = self._unwrap_augmented(X)
        X = check_images(X)
        y_encoded = self._learn_classes(y, len(X))
        self._check_params()
        with self._concrete_device() as device, seeded(self.random_state, device), \
                self._augmenting(augmenter):
            epochs = None
            if not self.warm_start or not self.initialized_:
                epochs = self._initialize_or_resume()
            NeuralNet.partial_fit(self, X, y_encoded, epochs=epochs, **fit_params)
        return self

    def partial_fit(self, X, y, classes=None, **fit_params):
        """Train for ``max_epochs`` more epochs without re-initialising.

        The first call learns ``classes_`` from ``y`` (or ``classes``); later
        calls must use the same labels.
        """
        X, augmenter = self._unwrap_augmented(X)
        X = check_images(X)
        if not self.initialized_:
            if classes is not None:
                self.classes = classes
            y_encoded = self._learn_classes(y, len(X))
        else:
            y_encoded = self._encode(y, len(X))
        with self._concrete_device() as device, seeded(self.random_state, device), \
                self._augmenting(augmenter):
            if not self.initialized_:
                self.initialize()
            NeuralNet.partial_fit(self, X, y_encoded, **fit_params)
        return self

    # ------------------------------------------------------------------
    # augmentation
    # ------------------------------------------------------------------
    def _unwrap_augmented(self, X):
        """Images and the augmenter to train with (pipeline or ``augment``)."""
        if not isinstance(X, AugmentedImages):
            return X, self.augment
        if self.augment is not None:
            raise ValueError(
                "augmentation is configured twice: by a RandomReflectRotate "
                "pipeline step and by augment=...; keep one of them.")
        return X.images, X.augmenter

    @contextlib.contextmanager
    def _augmenting(self, augmenter):
        """During the block, training batches pass through ``augmenter``."""
        if augmenter is None:
            yield
            return
        self._augment_with_ = (augmenter, augmenter.make_generator())
        try:
            yield
        finally:
            del self._augment_with_

    def infer(self, x, **fit_params):
        """Forward pass (skorch), under bfloat16 autocast with ``amp``."""
        dtype = amp_dtype(self.amp, self.device)
        with autocast(self.device, dtype):
            out = super().infer(x, **fit_params)
        return out if dtype is None else out.float()

    def train_step_single(self, batch, **fit_params):
        """skorch's training step, on a freshly augmented batch if augmenting."""
        augment_with = getattr(self, "_augment_with_", None)
        if augment_with is not None:
            augmenter, generator = augment_with
            Xi, yi = batch
            Xi = augmenter.augment_batch(to_device(Xi, self.device), generator)
            batch = (Xi, yi)
        return super().train_step_single(batch, **fit_params)

    def _initialize_or_resume(self):
        """Initialise; with ``resume``, load the checkpoint. Epochs left to run."""
        files = checkpoint_files(self.checkpoint_dir) if self.resume else None
        if files is None or not files["f_params"].is_file():
            self.initialize()
            return None
        self._initialize_without_pretrained()
        try:
            self.load_params(**{k: str(v) for k, v in files.items() if v.is_file()})
        except (RuntimeError, ValueError, KeyError) as exc:
            raise ValueError(
                f"cannot resume from the checkpoint in {str(self.checkpoint_dir)!r}"
                f": {str(exc).splitlines()[0]}. It was probably made with other "
                "classes or settings; use another checkpoint_dir or "
                "resume=False.") from exc
        done = len(self.history_)
        if self.verbose:
            print(f"Resuming from {self.checkpoint_dir} after epoch {done}.")
        return max(self.max_epochs - done, 0)

    def _initialize_without_pretrained(self):
        """Initialise with random weights: they are about to be overwritten."""
        self._skip_pretrained_ = True
        try:
            self.initialize()
        finally:
            del self._skip_pretrained_

    # ------------------------------------------------------------------
    # prediction
    # ------------------------------------------------------------------
    def forward_iter(self, X, training=False, device="cpu"):
        """Yield network outputs batch by batch (see skorch)."""
        with self._concrete_device() as concrete, preserved_rng(concrete):
            yield from super().forward_iter(X, training=training, device=device)

    def evaluation_step(self, batch, training=False):
        """skorch's inference step, in inference mode.

        With ``tta`` it returns the log of the 8-view mean probability (the
        predict nonlinearity, softmax, turns it back into that probability).
        """
        if training:
            return super().evaluation_step(batch, training=training)
        self.check_is_fitted()
        Xi = batch[0] if isinstance(batch, (tuple, list)) else batch
        with torch.inference_mode():
            self._set_training(False)
            if not self.tta:
                return self.infer(Xi)
            dtype = amp_dtype(self.amp, self.device)
            with autocast(self.device, dtype):
                return self._plain_module().tta_log_proba(to_device(Xi, self.device))

    def predict_proba(self, X):
        """Class probabilities, shape (n_images, n_classes), columns as ``classes_``.

        Parameters
        ----------
        X : array of shape (n, H, W, 3) or sequence of image paths

        Returns
        -------
        ndarray of shape (n, n_classes)
        """
        self.check_is_fitted()
        if isinstance(X, AugmentedImages):
            X = X.images
        if not is_dataset(X):
            X = check_images(X)
        return super().predict_proba(X)

    def predict(self, X):
        """Predicted class label of each image (values of ``classes_``).

        Parameters
        ----------
        X : array of shape (n, H, W, 3) or sequence of image paths

        Returns
        -------
        ndarray of shape (n,)
        """
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    def score(self, X, y, sample_weight=None):
        """Accuracy of ``predict(X)`` against ``y``.

        Labels unknown to the classifier raise ``ValueError`` rather than
        silently counting as errors.
        """
        self.check_is_fitted()
        self._encode(y, len(check_images(X, check_files=False)))
        return super().score(X, y, sample_weight=sample_weight)

    # ------------------------------------------------------------------
    # persistence
    # ------------------------------------------------------------------
    def load_params(self, *args, **kwargs):
        """Load module/optimizer/history files (skorch); device-aware."""
        with self._concrete_device():
            return super().load_params(*args, **kwargs)

    def __setstate__(self, state):
        requested = state["device"]
        if requested in ("auto", None):
            state["device"] = resolve_device(requested)
        super().__setstate__(state)
        if requested in ("auto", None):
            self.device = requested

    def save(self, path):
        """Save the fitted model to one ``.safetensors`` file, atomically.

        The file holds the network's tensors and, as JSON metadata, the
        parameters, ``classes_`` and training history; nothing is pickled.
        Parameters that are not plain values (optimizer class, callbacks) are
        not stored: :meth:`load` uses their defaults unless given.

        Parameters
        ----------
        path : str or path-like
            Target file, conventionally ending in ``.safetensors``.

        Returns
        -------
        path : str or path-like
        """
        from . import __version__

        self.check_is_fitted()
        save_model_file(path, self._plain_module().state_dict(),
                        self.get_params(deep=False),
                        self.classes_, self.history_.to_list(), __version__)
        return path

    @classmethod
    def load(cls, path, **params):
        """Load a model written by :meth:`save`; never unpickles anything.

        Parameters
        ----------
        path : str or path-like
        **params
            Parameters overriding the stored ones, e.g. ``device="cpu"`` or a
            custom ``optimizer`` for further training.

        Returns
        -------
        VGG19LeukocyteClassifier
            Fitted, ready to predict.
        """
        state, config, classes, history = read_model_file(path)
        config.update(params)
        model = cls(**config)
        model.classes_inferred_ = classes
        with model._concrete_device() as device:
            model._initialize_without_pretrained()
            model._plain_module().load_state_dict(state)
            model.module_.to(device)
        model.history_ = History(history)
        return model
