"""``VGG19LeukocyteClassifier``: skorch's NeuralNetClassifier for cell images.

The class holds what is particular to it: class labels, image input, the VGG
module and its training step. Everything else lives in the module named after
it: parameter constraints (``_params.py``), device placement (``_runtime.py``),
labels (``_labels.py``), augmentation and its pipeline hand-over
(``_augment.py``), datasets and on-device batches (``_dataset.py``), parameter
groups (``_optim.py``), divergence and interruption (``_training.py``),
checkpoints (``_checkpoint.py``), files (``_persist.py``).
"""

import contextlib
import os
import warnings

import numpy as np
import torch
from skorch import NeuralNet, NeuralNetClassifier
from skorch.callbacks import (EpochScoring, EpochTimer, PassthroughScoring, PrintLog,
                              ProgressBar)
from skorch.history import History
from skorch.utils import is_dataset, to_device, to_tensor

from ..augmentation._augment import TrainingAugmentation, split_augmented
from ..callbacks._checkpoint import AtomicCheckpoint
from ..io._checkpoint import checkpoint_owner, data_fingerprint, load_checkpoint
from ..io._model_file import LAB_SHIFT_FIELDS, read_model_file, save_model_file
from ..nn._vgg import LeukocyteVGG, check_network, check_references, decode_size
from ..utils._images import check_images
from ..utils._labels import (check_same_classes, check_source, check_targets, class_weights,
                             encode, learn_classes, source_class_mask, source_weights)
from ..utils._precision import amp_dtype, autocast
from ..utils._runtime import live_progress, resolve_device, seeded
from ..weights._imagenet import implied_settings
from ._dataset import ImageDataset, ImageInput, split_targets
from ._device import DevicePlacement, warn_other_versions
from ._optim import optimizer_kwargs, param_groups, register_group_setters
from ._params import validate_classifier_params
from ._training import (FitInterruptedWarning, check_finite_loss, check_sample_weight,
                        interruption_message, weighted_loss)

__all__ = ["VGG19LeukocyteClassifier"]


def _combined(sample_weight, source_weight, mask):
    """One weight per image (the product of those given); ones where only a
    class mask needs the weighted loss; None where neither is given."""
    weights = [w for w in (sample_weight, source_weight) if w is not None]
    if not weights:
        return None if mask is None else np.ones(len(mask), np.float32)
    return np.prod(weights, axis=0).astype(np.float32)


def _as_lists(value):
    """Arrays, tensors and tuples as (nested) lists of Python numbers, for
    JSON; anything else as it is (the model file's check judges it)."""
    if isinstance(value, dict):
        return {str(k): _as_lists(v) for k, v in value.items()}
    if isinstance(value, (np.ndarray, torch.Tensor, np.generic)):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_as_lists(v) for v in value]
    return value


def _accuracy(net, X, y):
    """Accuracy from (cached) network outputs; ``y`` holds class labels."""
    proba = NeuralNet.predict_proba(net, X)
    return float(np.mean(net.classes_[proba.argmax(axis=1)] == np.asarray(y)))


class VGG19LeukocyteClassifier(DevicePlacement, ImageInput, NeuralNetClassifier):
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
    weights : str, path-like, WeightsEnum, LeukoskWeights or None, default="IMAGENET1K_V1"
        Initial weights of the network except the new last layer.
        ``"IMAGENET1K_V1"`` (the paper's transfer learning) or any member of
        :class:`torchvision.models.VGG19_Weights` (``VGG19_BN_Weights`` when
        ``batch_norm=True``) is loaded through torchvision's weights API and
        the torch hub cache, so a file at
        ``$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth`` works offline; a
        path loads a local state dict in torchvision's VGG-19 layout
        (``.pth``/``.pt`` via ``torch.load(weights_only=True)``, or
        ``.safetensors``); a :class:`~leukosk.LeukoskWeights` member (or its
        name, e.g. ``"PBC_VGG19BN_W25"``) starts from a model leukosk ships,
        trained on PBC; ``None`` initialises randomly. Missing weights raise
        :class:`leukosk.WeightsUnavailableError` at the start of ``fit``.
    batch_norm : bool or None, default=None
        Use VGG-19 with batch normalisation (``torchvision.models.vgg19_bn``),
        which trains far better from scratch. ``None``: as the weights are
        (a shipped model or a ``VGG19_BN_Weights`` member), else ``False``,
        the paper's plain VGG-19.
    image_size : int or None, default=None
        Images are resized (whole image, bilinear with antialiasing) to
        ``image_size x image_size`` before the network. ``None``: the size
        the weights were trained at, 224 for ImageNet VGG-19 (and for random
        weights), the shipped model's own for a :class:`~leukosk.LeukoskWeights`
        member. At least 32.
    head_lr_multiplier : float, default=20.0
        Learning-rate factor of the new last layer, as MATLAB's
        ``WeightLearnRateFactor``/``BiasLearnRateFactor`` of 20 in its
        transfer-learning recipe. Changing it (or ``lr``, or
        ``optimizer__weight_decay``) with ``set_params`` on a fitted
        classifier updates every parameter group by these rules.
    freeze_features : bool, default=False
        Keep the convolutional layers fixed (feature-extraction mode); only
        the fully connected layers train.
    augment : None or augmenter, default=None
        Augment every training batch on the training device, freshly each
        epoch; prediction is never augmented. The paper's augmentation is
        :class:`~leukosk.RandomReflectRotate` (random mirrors, rotation 0-360
        degrees); :class:`~leukosk.Augmentations` chains several. An
        augmenter step before the classifier in a pipeline does the same;
        ``augment__*`` parameters reach the augmenter (``GridSearchCV`` can
        search them).
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
        or skorch's ``train_split`` (``predefined_split`` works with image
        arrays and labels too), not both.
    class_weight : None, "balanced" or dict, default=None
        Weights of the classes in the loss, as in scikit-learn: ``"balanced"``
        weighs each class by ``n_samples / (n_classes * count)`` (PBC ranges
        from 1,218 basophils to 3,329 neutrophils); a dict maps labels to
        weights (missing labels weigh 1).
    source_classes : None, "present" or dict, default=None
        For training on several sources whose class lists differ (e.g. PBC's
        8 classes and a second lab's 5), with ``fit(X, y, source=...)``
        naming each image's source: each image's loss is the cross-entropy
        over the classes its source may hold, so that a source's look is
        never learnt as evidence against the classes it lacks. ``"present"``:
        the classes labelled in that source's images; a dict maps a source
        to its classes (other sources: every class). Ignored without
        ``source``.
    source_weight : None or "balanced", default=None
        With ``fit(X, y, source=...)``: ``"balanced"`` weighs each image by
        ``n_samples / (n_sources * count)`` of its source, so that every
        source weighs the same in the loss (times ``sample_weight``).
    random_state : None, int or numpy.random.RandomState, default=None
        Seeds weight initialisation, dropout, shuffling and the validation
        split. Two CPU fits with the same integer give identical models. The
        caller's global torch RNG state is left as it was.
    checkpoint_dir : None or path-like, default=None
        If given, the parameters, optimizer state and history are written
        there after every epoch as one atomic unit with a manifest (see
        :doc:`/persistence`), so an interrupted fit leaves the last completed
        epoch on disk. The folder belongs to one fit at a time: a second fit
        into it while the first runs (clones under ``GridSearchCV(n_jobs>1)``,
        which share their parameters) raises :class:`RuntimeError`; give each
        fit its own folder, or none in a search.
    resume : bool, default=False
        With ``checkpoint_dir``: if a checkpoint is there, ``fit`` loads it and
        trains only the epochs still missing to reach ``max_epochs``. A
        checkpoint of other classes, another network shape or other data
        (images and labels, by their fingerprint: another fold of a
        cross-validation) is refused, naming the difference.
    device : str, default="auto"
        ``"auto"`` trains on CUDA when available, else on the CPU; ``"cpu"``,
        ``"cuda"`` or ``"cuda:N"`` force one (CUDA where there is none is an
        error). Resolved once, into ``device_``, when the network is built.
    amp : bool or "bfloat16", default=False
        Mixed precision: run the network under bfloat16 autocast for training
        and prediction (outputs and the loss stay float32). Much faster on
        GPUs from Ampere on and on CPUs with AVX512-BF16 or AMX; on CPUs
        without them (AVX2 only) bfloat16 is emulated and many times slower
        than float32. float16 is not offered.
    channels_last : bool, default=False
        Channels-last (NHWC) memory layout for weights and activations, which
        the fast convolution kernels prefer; use it with ``amp``.
    data_on_device : "auto" or bool, default="auto"
        For in-memory image arrays: copy the ``uint8`` images to the training
        device once and cut batches there, instead of a
        :class:`~torch.utils.data.DataLoader` collating and copying every
        batch. Batches on the device honour the ``shuffle``, ``batch_size``
        and ``drop_last`` of ``iterator_train__*``/``iterator_valid__*``.
        ``"auto"`` does so when ``X`` is an array, ``iterator_train`` and
        ``iterator_valid`` are the DataLoader with no other options, and the
        array takes at most a quarter of the free GPU memory; ``True`` with
        a custom iterator or another option is an error (it could not honour
        them). File-path inputs always stream through the DataLoader (set
        ``iterator_train__num_workers``).
    lr : float, default=1e-4
        Learning rate (MATLAB's ``InitialLearnRate`` in the paper's recipe);
        finite and non-negative.
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
        The network, :class:`~leukosk.LeukocyteVGG`, whose parameters list
        every ``module__*`` setting. ``module__dropout=...`` (default 0.5),
        ``module__hidden_units=...`` (default 4096; e.g. 256 for a much
        faster from-scratch CPU model, with pretrained weights then only in
        the convolutional layers), ``module__width=...`` (channel multiplier
        of the convolutions, default 1.0), ``module__pool_size=...`` (1 for
        global average pooling before the head) and ``module__crop=...``
        (central fraction of each image kept) reach its constructor.
    criterion : torch loss class, default=torch.nn.CrossEntropyLoss
        ``criterion__label_smoothing=...`` and the like reach it.
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
    device_ : str
        The torch device the network lives on (``device`` resolved).
    image_size_ : int
        The input size the network was built for (``image_size`` resolved).
    decode_size_ : int
        Image files are decoded and resized to this side before the network
        crops (``module__crop``) and resizes to ``image_size_``: ``image_size_
        / crop``, so that cropping loses no resolution (twice ``image_size_``
        with ``module__view="cell"``). Load image arrays at this size too
        (e.g. ``load_pbc(..., image_size=clf.decode_size_)``).
    lab_shift_threshold_ : float
        Only where set (shipped models carry one; set it from
        :func:`leukosk.domain.calibrate_lab_shift` for your own model): the
        lab-shift score above which :func:`leukosk.domain.check_lab_shift`
        and ``leukosk predict``/``count`` warn that images do not look like
        the training lab's. Saved and loaded with the model.
    lab_shift_unsure_threshold_ : float
        Only where set (with the other): the unsureness (mean of one minus
        the top probability) above which a folder is flagged as well.
    lab_shift_references_ : dict
        Only where set (:func:`leukosk.domain.fit_lab_references`, for a
        model trained on several labs): each training lab's statistics at the
        first batch-norm layers; the lab-shift score is then the divergence
        from the nearest of them. Saved and loaded with the model.
    augmentation_ : TrainingAugmentation or None
        The augmenter the last fit trained with and its random generator.
    class_weight_ : ndarray of shape (n_classes,) or None
        The weight of each class in the loss (from ``class_weight``).
    interrupted_ : bool
        Whether the last fit was interrupted (Ctrl-C) before ``max_epochs``;
        it then also warns with :class:`~leukosk.FitInterruptedWarning`.

    See Also
    --------
    skorch.classifier.NeuralNetClassifier : the base class and its parameters.

    Notes
    -----
    ``n_features_in_`` is not defined: the classifier accepts images of any
    height and width and resizes them, so there is no fixed feature count.

    skorch callbacks see each batch's targets as class labels (values of
    ``classes_``) in ``on_batch_end``, so scikit-learn scorers in
    :class:`~skorch.callbacks.EpochScoring` compare labels with labels.

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
        batch_norm=None,
        image_size=None,
        head_lr_multiplier=20.0,
        freeze_features=False,
        augment=None,
        tta=False,
        validation=None,
        class_weight=None,
        source_classes=None,
        source_weight=None,
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
        self.class_weight = class_weight
        self.source_classes = source_classes
        self.source_weight = source_weight
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

    def set_params(self, **params):
        """Set parameters; ``augment__*`` ones reach the augmenter (see skorch)."""
        nested = {k: params.pop(k) for k in list(params) if k.startswith("augment__")}
        super().set_params(**params)
        if nested:
            if self.augment is None:
                raise ValueError(f"cannot set {sorted(nested)}: augment is None; "
                                 "set augment=... first.")
            self.augment.set_params(**{k[len("augment__"):]: v for k, v in nested.items()})
        return self

    @property
    def classes_(self):
        """The class labels, in the order of the network's outputs."""
        return self.classes_inferred_

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
        if isinstance(self.checkpoint_dir, (str, os.PathLike)):  # set_params may pass junk
            callbacks.append(("checkpoint", AtomicCheckpoint(self.checkpoint_dir)))
        callbacks.append(("print_log", PrintLog()))
        if np.ndim(self.verbose) == 0 and self.verbose and live_progress():
            # a bar redrawn per batch; in a log, the epoch table says enough
            callbacks.append(("progress_bar", ProgressBar()))
        return callbacks

    def notify(self, method_name, **cb_kwargs):
        """Call the callbacks; ``on_batch_end`` sees the targets as labels."""
        if method_name == "on_batch_end" and self.initialized_:
            Xi, yi = cb_kwargs["batch"]
            targets = split_targets(yi)[0]
            cb_kwargs["batch"] = (Xi, self.classes_[to_tensor(targets, "cpu").numpy()])
        return super().notify(method_name, **cb_kwargs)

    # ------------------------------------------------------------------
    # initialisation
    # ------------------------------------------------------------------
    def initialize(self):
        """Check the parameters, resolve the device, build everything (skorch)."""
        validate_classifier_params(self)
        self._resolve_runtime()
        self.amp_dtype_ = amp_dtype(self.amp, self.device_)
        settings = self.network_settings()
        self.image_size_ = settings["image_size"]
        self.decode_size_ = decode_size(self.image_size_, settings["module"])
        return super().initialize()

    def network_settings(self):
        """The settings that shape the network: the parameters, with what the
        weights imply (shipped models fix their architecture and input size)
        where a parameter is left at ``None``.

        Returns
        -------
        dict
            ``batch_norm``, ``image_size`` and ``module`` (the keyword
            arguments of the module, ``module__*`` included).
        """
        implied = implied_settings(self.weights)
        module = {**implied["module"], **self.get_params_for("module")}
        batch_norm = self.batch_norm
        if batch_norm is None:
            batch_norm = bool(implied["batch_norm"])
        image_size = self.image_size if self.image_size is not None else implied["image_size"]
        return {"batch_norm": batch_norm, "image_size": image_size, "module": module}

    def initialize_module(self):
        """Build :class:`LeukocyteVGG` for ``len(classes_)`` classes."""
        settings = self.network_settings()
        kwargs = {
            "n_classes": len(self.classes_),
            "weights": None if getattr(self, "_restoring", False) else self.weights,
            "batch_norm": settings["batch_norm"],
            "image_size": settings["image_size"],
            "freeze_features": self.freeze_features,
            "progress": bool(self.verbose),
            "channels_last": bool(self.channels_last),
            "classes": [str(c) for c in self.classes_.tolist()],
            **settings["module"],
        }
        self.module_ = self.module(**kwargs)
        return self

    def initialize_criterion(self):
        """The loss, with ``class_weight`` as its class weights (skorch)."""
        kwargs = self.get_params_for("criterion")
        if getattr(self, "class_weight_", None) is not None:
            kwargs.setdefault("weight", torch.as_tensor(self.class_weight_,
                                                        dtype=torch.float32))
        self.criterion_ = self.initialized_instance(self.criterion, kwargs)
        return self


    def initialize_optimizer(self, triggered_directly=None):
        """Optimizer with the head learning-rate multiplier and no bias L2."""
        kwargs = optimizer_kwargs(self)
        lr = kwargs.pop("lr")
        weight_decay = kwargs.pop("weight_decay", 0.0)
        groups = param_groups(self, self.get_all_learnable_params(), lr, weight_decay)
        self.optimizer_ = self.optimizer(groups, lr=lr, **kwargs)
        return self

    def _initialize_optimizer(self, reason=None):
        super()._initialize_optimizer(reason)
        register_group_setters(self)
        return self

    def _plain_module(self):
        """``module_`` itself, or the module inside it when ``compile=True``."""
        return getattr(self.module_, "_orig_mod", self.module_)

    # ------------------------------------------------------------------
    # fitting
    # ------------------------------------------------------------------
    def fit(self, X, y, **fit_params):
        """Train the network on images ``X`` with labels ``y``.

        Parameters
        ----------
        X : array of shape (n, H, W, 3) or sequence of image paths
            ``uint8`` (0-255) or float (0-1) RGB images of any one size, or
            file paths decoded lazily batch by batch; or what an augmenter
            step of a pipeline hands on.
        y : array-like of shape (n,)
            Class labels, strings or integers.
        **fit_params
            ``sample_weight`` (array of shape (n,)): weight of each image in
            the loss; ``source`` (array of shape (n,)): each image's training
            source, for ``source_classes`` and ``source_weight``; other keys
            go to skorch.

        Returns
        -------
        self
        """
        if not self.warm_start or not self.initialized_:
            self.initialized_ = False  # partial_fit builds the network afresh
        return self.partial_fit(X, y, **fit_params)

    def partial_fit(self, X, y, classes=None, **fit_params):
        """Train for ``max_epochs`` more epochs without re-initialising.

        The first call learns ``classes_`` from ``y`` (or ``classes``, or the
        ``classes`` parameter); later calls must use labels the network knows.
        """
        X, augmenter = split_augmented(X, self.augment)
        X = check_images(X)
        y = check_targets(y, len(X))
        sample_weight = check_sample_weight(fit_params.pop("sample_weight", None), len(X))
        source = check_source(fit_params.pop("source", None), len(X))
        epochs = None
        device = self.device_ if self.initialized_ else resolve_device(self.device)
        checkpointing = isinstance(self.checkpoint_dir, (str, os.PathLike))
        # the folder is this fit's alone while it runs; its checkpoints record
        # the data, so that resume refuses a checkpoint of other data
        self._checkpoint_data = data_fingerprint(X, y) if checkpointing else None
        owner = checkpoint_owner(self.checkpoint_dir) if checkpointing \
            else contextlib.nullcontext()
        with owner, seeded(self.random_state, device):
            fresh = not self.initialized_
            if fresh:
                given = classes if classes is not None else self.classes
                self.classes_inferred_ = learn_classes(y, given)
                self.class_weight_ = class_weights(self.class_weight, self.classes_, y)
                epochs = self._initialize_or_resume()
            else:
                check_same_classes(self.classes_, y)
            previous = None if fresh else getattr(self, "augmentation_", None)
            if augmenter is None:
                self.augmentation_ = None
            elif previous is None or previous.augmenter is not augmenter:
                self.augmentation_ = TrainingAugmentation(augmenter)  # else: draws go on
            mask = source_class_mask(self.source_classes, source, y, self.classes_)
            sample_weight = _combined(sample_weight, source_weights(self.source_weight, source),
                                      mask)
            dataset = ImageDataset(X, encode(y, self.classes_), self.decode_size_, labels=y,
                                   sample_weight=sample_weight, class_mask=mask)
            self.interrupted_ = False
            NeuralNet.partial_fit(self, dataset, y, epochs=epochs, **fit_params)
        if self.interrupted_:
            warnings.warn(interruption_message(self), FitInterruptedWarning, stacklevel=2)
        return self

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        """skorch's loop; an interruption (Ctrl-C) is recorded in ``interrupted_``."""
        try:
            return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except KeyboardInterrupt:
            self.interrupted_ = True
            raise  # skorch ends training and keeps the model

    def train_step_single(self, batch, **fit_params):
        """skorch's training step, on a freshly augmented batch if augmenting;
        a non-finite loss stops training with a clear error."""
        Xi, yi = batch
        if self.augmentation_ is not None:
            Xi = self.augmentation_(to_device(Xi, self.device_))
        step = super().train_step_single((Xi, yi), **fit_params)
        check_finite_loss(step["loss"], epoch=len(self.history),
                          batch=len(self.history[-1]["batches"]), lr=self.lr)
        return step

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """Cross-entropy (or ``criterion``); weighted by ``sample_weight`` if given."""
        targets, weights, mask = split_targets(y_true)
        targets = to_tensor(targets, device=self.device_)
        if weights is None:
            return self.criterion_(y_pred, targets)
        return weighted_loss(self.criterion_, y_pred, targets,
                             to_tensor(weights, device=self.device_),
                             None if mask is None else to_tensor(mask, device=self.device_))

    def _initialize_or_resume(self):
        """Initialise; with ``resume``, load the checkpoint. Epochs left to run."""
        if not self.resume:
            self.initialize()
            return None
        self._initialize_restoring()
        done = load_checkpoint(self, self.checkpoint_dir)
        if done is None:  # nothing to resume from: start with the real weights
            self.initialize()
            return None
        if self.verbose:
            print(f"Resuming from {self.checkpoint_dir} after epoch {done}.")
        return max(self.max_epochs - done, 0)

    def _initialize_restoring(self):
        """Initialise with random weights: they are about to be overwritten."""
        self._restoring = True
        try:
            self.initialize()
        finally:
            del self._restoring

    # ------------------------------------------------------------------
    # prediction
    # ------------------------------------------------------------------
    def infer(self, x, **fit_params):
        """Forward pass (skorch), under bfloat16 autocast with ``amp``."""
        with autocast(self.device_, self.amp_dtype_):
            out = super().infer(x, **fit_params)
        return out if self.amp_dtype_ is None else out.float()

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
            with autocast(self.device_, self.amp_dtype_):
                return self._plain_module().tta_log_proba(to_device(Xi, self.device_))

    def predict_proba(self, X):
        """Class probabilities, shape (n_images, n_classes), columns as ``classes_``.

        Parameters
        ----------
        X : array of shape (n, H, W, 3) or sequence of image paths

        Returns
        -------
        ndarray of shape (n, n_classes), float64
            Rows sum to 1 (to float64 precision, as scikit-learn's metrics
            expect).
        """
        self.check_is_fitted()
        X, _ = split_augmented(X, None)
        if not is_dataset(X):
            X = check_images(X)
        proba = super().predict_proba(X).astype(np.float64)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba` (``-inf`` where a probability is 0).

        Parameters
        ----------
        X : array of shape (n, H, W, 3) or sequence of image paths

        Returns
        -------
        ndarray of shape (n, n_classes)
        """
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

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
        encode(check_targets(y, len(check_images(X, check_files=False))), self.classes_)
        return super().score(X, y, sample_weight=sample_weight)

    # ------------------------------------------------------------------
    # persistence
    # ------------------------------------------------------------------
    def __getstate__(self):
        from sklearn import __version__ as sklearn_version

        from .._version import __version__

        state = super().__getstate__()
        state["_sklearn_version"] = sklearn_version
        state["_leukosk_version"] = __version__
        return state

    def __setstate__(self, state):
        warn_other_versions(state, type(self).__name__)
        super().__setstate__(state)

    def save(self, path, *, dtype=None):
        """Save the fitted model to one ``.safetensors`` file, atomically.

        The file holds the network's tensors and, as JSON metadata, the
        parameters (augmenters included), ``classes_``, training history, the
        network's settings and preprocessing, and a checksum; nothing is
        pickled. Parameters that are not plain values (optimizer class,
        callbacks) are not stored: :meth:`load` uses their defaults unless
        given. The file also serves as ``weights=`` of a new classifier
        (fine-tuning from this model).

        Parameters
        ----------
        path : str or path-like
            Target file, conventionally ending in ``.safetensors``.
        dtype : torch.dtype, default=None
            Store floating-point tensors in this precision
            (``torch.float16`` halves the file; loading converts back).

        Returns
        -------
        path : str or path-like
        """
        from .._version import __version__

        self.check_is_fitted()
        network = dict(self.network_settings(),
                       preprocessing=self._plain_module().preprocess.describe())
        for name in LAB_SHIFT_FIELDS:
            if getattr(self, f"{name}_", None) is not None:
                network[name] = float(getattr(self, f"{name}_"))
        if getattr(self, "lab_shift_references_", None):
            network["lab_shift_references"] = _as_lists(self.lab_shift_references_)
        save_model_file(path, self._plain_module().state_dict(),
                        self.get_params(deep=False), self.classes_,
                        self.history_.to_list(), __version__, network=network,
                        dtype=dtype)
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
            Fitted, ready to predict (and to train further).

        Raises
        ------
        FileNotFoundError, ValueError
            No such file; or not a readable, unaltered leukosk model (see
            :doc:`/persistence`).
        """
        state, config, classes, history, network = read_model_file(path)
        config.update(params)
        try:
            model = cls(**config)
            validate_classifier_params(model)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{str(path)!r} holds settings leukosk refuses: "
                             f"{str(exc).splitlines()[0]}") from exc
        model.classes_inferred_ = classes
        check_network(path, model.network_settings(), len(classes), state)
        model._initialize_restoring()
        try:
            model._plain_module().load_state_dict(state)
        except RuntimeError as exc:
            raise ValueError(f"{str(path)!r} does not fit the network its settings "
                             f"describe ({str(exc).splitlines()[0]}); save the model "
                             "again.") from exc
        model.history_ = History(history)
        for name in LAB_SHIFT_FIELDS:  # checked on reading
            if (network or {}).get(name) is not None:
                setattr(model, f"{name}_", float(network[name]))
        references = (network or {}).get("lab_shift_references")
        if references is not None:  # their form checked on reading, their size here
            check_references(path, model._plain_module(), references)
            model.lab_shift_references_ = references
        return model
