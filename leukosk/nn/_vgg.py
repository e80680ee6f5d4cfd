"""The torch module: preprocessing + torchvision VGG-19 with a new last layer.

``LeukocyteVGG`` is torchvision's VGG-19 (optionally with batch norm) whose last
``Linear`` (``classifier[6]``, 4096 -> 1000) is replaced by a freshly
initialised ``hidden_units`` -> ``n_classes`` layer, as in Jarjees et al.
(2022). The other fully connected layers keep their pretrained weights where
their shape is torchvision's (``hidden_units=4096``, ``width=1``,
``pool_size=7``). A small preprocessing stage in front converts ``uint8``/float
CHW batches to normalised float and resizes the region the network sees (the
central ``crop`` fraction, the whole image by default, or a square around the
cell with ``view="cell"``) to ``image_size``, on whatever device the module is
on.
"""

import torch
from torch import nn
from torchvision.models.vgg import VGG, cfgs, make_layers

from ..augmentation._augment import dihedral_views
from ..io._model_file import ModelFileWeights
from ..utils._images import resize_batch
from ..weights._imagenet import (backbone_state, load_state_dict, normalization,
                                 resolve_weights)
from ._cellview import background_white, crop_boxes, locate_cells
from ._settings import check_module_settings

__all__ = ["LeukocyteVGG", "HEAD_PREFIX", "decode_size", "check_network", "check_network_metadata",
           "check_references"]

#: Parameter-name prefix of the replaced last layer inside ``LeukocyteVGG``.
HEAD_PREFIX = "backbone.classifier.6."
_TV_HEAD_PREFIX = "classifier.6."


def center_crop(images, fraction):
    """The central ``fraction`` of each image's height and width (a view)."""
    if fraction == 1:
        return images
    height, width = images.shape[-2:]
    h, w = max(1, round(height * fraction)), max(1, round(width * fraction))
    top, left = (height - h) // 2, (width - w) // 2
    return images[..., top:top + h, left:left + w]


#: The views of the image the network can be given (``module__view``).
VIEWS = ("centre", "cell")


def decode_size(image_size, module_params):
    """The side images are decoded to so that the view loses no resolution:
    ``image_size / crop`` for the central crop; twice ``image_size`` for the
    cell view, whose square may be a third of the image."""
    if module_params.get("view", "centre") == "cell":
        return 2 * image_size
    return round(image_size / module_params.get("crop", 1.0))


class Preprocess(nn.Module):
    """uint8 or [0, 1] float CHW batch -> cropped, resized, normalised float batch."""

    def __init__(self, image_size, mean, std, crop=1.0, standardize=False,
                 view="centre", cell_scale=1.8, white_balance=False):
        super().__init__()
        if view not in VIEWS:
            raise ValueError(f"module__view={view!r}: use one of {VIEWS}.")
        self.image_size = image_size
        self.crop = crop
        self.standardize = standardize
        self.view = view
        self.cell_scale = cell_scale
        self.white_balance = white_balance
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1),
                             persistent=False)

    def describe(self):
        """The preprocessing as plain data (stored with saved models)."""
        return {"crop": self.crop, "mean": self.mean.flatten().tolist(),
                "std": self.std.flatten().tolist(), "image_size": self.image_size,
                "standardize": self.standardize, "view": self.view,
                "cell_scale": self.cell_scale, "white_balance": self.white_balance}

    def boxes(self, x):
        """The region of each image the network sees: ``(x0, y0, x1, y1)``
        fractions of its width and height, (n, 4)."""
        if self.view == "cell":
            return locate_cells(x, scale=self.cell_scale, fallback=self.crop)[0]
        low, high = (1 - self.crop) / 2, (1 + self.crop) / 2
        return torch.tensor([[low, low, high, high]]).expand(len(x), 4)

    def _view(self, x):
        if self.view == "cell":
            crops = crop_boxes(x.float(), self.boxes(x), self.image_size)
            return crops.div_(255.0) if x.dtype == torch.uint8 else crops
        x = resize_batch(center_crop(x, self.crop), self.image_size)
        return x.float().div_(255.0) if x.dtype == torch.uint8 else x

    def forward(self, x):
        white = background_white(x) if self.white_balance else None
        x = self._view(x)
        if white is not None:  # the background becomes (1, 1, 1)
            x = (x / white).clamp_(max=1.0)
        if self.standardize:  # each image's own colour statistics
            mean = x.mean(dim=(2, 3), keepdim=True)
            return (x - mean) / x.std(dim=(2, 3), keepdim=True).clamp_min(1e-3)
        return (x - self.mean) / self.std


def _vgg19(n_classes, batch_norm, width, dropout, hidden_units, pool_size):
    """torchvision's VGG-19 (configuration "E"), channels scaled by ``width``.

    ``width=1, hidden_units=4096, pool_size=7`` is exactly
    ``torchvision.models.vgg19(_bn)`` with an ``n_classes`` last layer; other
    values keep the 19 weight layers and their order, with fewer channels,
    narrower hidden layers or a smaller pooled map.

    Built on PyTorch's ``meta`` device, then given memory and initialised
    once (:func:`_initialise`): torchvision's own constructor would first make
    and initialise its 1000-class head of 123 million parameters, only for it
    to be replaced.
    """
    config = [v if v == "M" else max(1, round(v * width)) for v in cfgs["E"]]
    flat = config[-2] * pool_size**2
    with torch.device("meta"):
        backbone = VGG(make_layers(config, batch_norm=batch_norm), init_weights=False,
                       dropout=dropout)
        backbone.avgpool = nn.AdaptiveAvgPool2d(pool_size)
        torchvision_sized = {0: (flat, hidden_units) == (512 * 7 * 7, 4096),
                             3: hidden_units == 4096, 6: False}
        backbone.classifier[0] = nn.Linear(flat, hidden_units)
        backbone.classifier[3] = nn.Linear(hidden_units, hidden_units)
        backbone.classifier[6] = nn.Linear(hidden_units, n_classes)
    device = torch.get_default_device()  # "meta" where only shapes are wanted
    if device.type != "meta":
        backbone = backbone.to_empty(device=device)
        _initialise(backbone, torchvision_sized)
    return backbone


def _initialise(backbone, torchvision_sized):
    """torchvision's VGG initialisation for the convolutions, batch norm and
    the hidden layers of torchvision's size; PyTorch's default for the layers
    leukosk resizes (the last one always), as when they replace torchvision's."""
    for module in backbone.features:
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            module.reset_parameters()  # weight 1, bias 0, running statistics reset
    for index, as_torchvision in torchvision_sized.items():
        layer = backbone.classifier[index]
        if as_torchvision:
            nn.init.normal_(layer.weight, 0, 0.01)
            nn.init.zeros_(layer.bias)
        else:
            layer.reset_parameters()


def _load_backbone(backbone, state, source):
    """Load everything but the last layer; hidden layers of another width or
    pooling are left fresh (only the convolutions transfer then)."""
    own = backbone.state_dict()
    state = {k: v for k, v in state.items() if not k.startswith(_TV_HEAD_PREFIX)}
    fresh_fc = any(k.startswith("classifier.") and k in own and own[k].shape != v.shape
                   for k, v in state.items())
    if fresh_fc:
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items()
             if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in state and not k.startswith(_TV_HEAD_PREFIX)
               and not (fresh_fc and k.startswith("classifier."))]
    unexpected = [k for k in state if k not in own]
    if wrong or missing or unexpected:
        raise ValueError(
            f"weights from {source} do not fit this network: "
            + "; ".join(f"{what} {items[:3]}" for what, items in (
                ("wrong shapes", wrong), ("missing", missing), ("unexpected", unexpected))
                if items)
            + ". Pass a state dict of torchvision.models.vgg19() (vgg19_bn() with "
            "batch_norm=True) for width=1, or the settings the weights were "
            "trained with.")
    backbone.load_state_dict(state, strict=False)


def _reuse_head(backbone, weights, state, classes):
    """Start the last layer's unit of each class the trained model knows from
    that model's unit (classes match by name: the integer 3 is the class
    "3"); the units of new classes keep their fresh start."""
    trained = getattr(weights, "meta", {}).get("classes")
    if not classes or trained is None:
        return
    rows = {str(c): i for i, c in enumerate(trained)}
    shared = [(i, rows[str(c)]) for i, c in enumerate(classes) if str(c) in rows]
    head = backbone.classifier[6]
    weight, bias = state.get(_TV_HEAD_PREFIX + "weight"), state.get(_TV_HEAD_PREFIX + "bias")
    if not shared or weight is None or weight.shape[1] != head.in_features:
        return
    ours, theirs = map(list, zip(*shared))
    with torch.no_grad():
        head.weight[ours] = weight[theirs].to(head.weight.dtype)
        head.bias[ours] = bias[theirs].to(head.bias.dtype)


class LeukocyteVGG(nn.Module):
    """VGG-19 with its last layer replaced for ``n_classes`` cell types.

    The network :class:`~leukosk.VGG19LeukocyteClassifier` trains. Its
    parameters are the classifier's network settings: pass them to the
    classifier with the ``module__`` prefix (``module__width=0.25``,
    ``module__crop=0.6``, ...); ``n_classes``, ``weights``, ``batch_norm``,
    ``image_size``, ``freeze_features``, ``classes``, ``progress`` and
    ``channels_last`` are set by the classifier from its own parameters and
    the training labels.

    Parameters
    ----------
    n_classes : int
        Outputs of the new last layer.
    weights : None, str, path-like or torchvision WeightsEnum, default=None
        Initial weights of everything but the new layer; see
        :class:`leukosk.VGG19LeukocyteClassifier`.
    batch_norm : bool, default=False
        Use ``vgg19_bn`` instead of ``vgg19``.
    image_size : int, default=224
        Side length the whole image is resized to.
    freeze_features : bool, default=False
        Do not train the convolutional part (feature-extraction mode).
    dropout : float, default=0.5
        Dropout of the two hidden fully connected layers (torchvision's default).
    hidden_units : int, default=4096
        Width of the two hidden fully connected layers. 4096 is VGG-19 (and
        needed to load pretrained fully connected layers); a smaller width
        makes a much smaller, faster network for from-scratch CPU runs, with
        pretrained weights then loaded into the convolutional layers only.
    width : float, default=1.0
        Channel multiplier of the 16 convolutional layers (64-128-256-512-512
        at 1.0, VGG-19's). 0.25 keeps VGG-19's 19 weight layers at 1/16 of
        the convolution work, for from-scratch training on a CPU; pretrained
        ImageNet weights need 1.0.
    pool_size : int, default=7
        Side of the average-pooled feature map that enters the first fully
        connected layer: 7 is torchvision's VGG (a 7x7 map, which at small
        inputs only repeats a 1x1 or 2x2 one); 1 is global average pooling,
        a head 49x smaller. Pretrained fully connected layers need 7.
    crop : float, default=1.0
        Keep the central ``crop`` fraction of each image's height and width
        before resizing (PBC's cells sit in the middle of a 360x363 frame);
        1.0 resizes the whole image, as the paper does.
    standardize : bool, default=False
        Normalise each image by its own per-channel mean and standard
        deviation (after cropping) instead of the dataset's: removes a lab's
        overall colour cast and brightness, at the cost of the absolute
        colour (see "Using leukosk on your lab's images").
    view : {"centre", "cell"}, default="centre"
        ``"centre"`` keeps the central ``crop`` of every image. ``"cell"``
        finds the white cell (its stained nucleus) in each image and keeps a
        square around it sized by the nucleus
        (:func:`leukosk.nn._cellview.locate_cells`), so that wide fields and
        tight crops of other labs give the network the same view; images
        without a nucleus (platelets) fall back to the central ``crop``.
    cell_scale : float, default=1.8
        With ``view="cell"``: the square's side in nucleus extents.
    white_balance : bool, default=False
        Divide each image by its background colour (the 90th percentile of
        each channel, :func:`leukosk.nn._cellview.background_white`) before
        the dataset normalisation: a lab's lamp, camera and background tint
        go, the stain's colours stay.
    classes : list of str, default=None
        Names of the outputs. With weights of a trained leukosk model, the
        new last layer starts, for each class that model knows, from its unit
        for that class; the units of classes it does not know start at random.
    progress : bool, default=False
        Show a progress bar while downloading weights.
    channels_last : bool, default=False
        Keep weights and activations in channels-last (NHWC) memory layout,
        which convolution kernels on GPUs (with mixed precision) and on
        recent CPUs run faster.

    Examples
    --------
    >>> import torch
    >>> from leukosk import LeukocyteVGG
    >>> net = LeukocyteVGG(n_classes=8, image_size=32)
    >>> net(torch.zeros(2, 3, 40, 40, dtype=torch.uint8)).shape
    torch.Size([2, 8])
    """

    def __init__(self, n_classes, weights=None, batch_norm=False, image_size=224,
                 freeze_features=False, dropout=0.5, hidden_units=4096,
                 progress=False, channels_last=False, width=1.0, pool_size=7,
                 crop=1.0, standardize=False, classes=None, view="centre",
                 cell_scale=1.8, white_balance=False):
        super().__init__()
        resolved = resolve_weights(weights, batch_norm=batch_norm)
        if isinstance(resolved, ModelFileWeights):  # a file from anywhere: check first
            full = resolved.get_state_dict()  # read once, for the check and the load
            check_network_metadata(resolved.path, resolved.network,
                                   len(resolved.meta["classes"]), full)
            state = backbone_state(full)
            del full
        else:
            state = load_state_dict(resolved, progress=progress)
        backbone = _vgg19(n_classes, batch_norm, width, dropout, hidden_units, pool_size)
        if state is not None:
            _load_backbone(backbone, state, source=str(weights))
            _reuse_head(backbone, resolved, state, classes)
        if freeze_features:
            backbone.features.requires_grad_(False)
        self.freeze_features = freeze_features
        self.preprocess = Preprocess(image_size, *normalization(resolved), crop=crop,
                                     standardize=standardize, view=view,
                                     cell_scale=cell_scale, white_balance=white_balance)
        self.backbone = backbone
        self.memory_format = (torch.channels_last if channels_last
                              else torch.contiguous_format)
        self.to(memory_format=self.memory_format)

    def train(self, mode=True):
        """Set train mode; frozen features (and their batch norm) stay in eval."""
        super().train(mode)
        if self.freeze_features:
            self.backbone.features.eval()
        return self

    def _prepared(self, x):
        return self.preprocess(x).contiguous(memory_format=self.memory_format)

    def forward(self, x):
        return self.backbone(self._prepared(x))

    def tta_log_proba(self, x):
        """Log of the class probabilities averaged over the 8 square symmetries."""
        views = dihedral_views(self.preprocess(x))
        batch = torch.cat(views).contiguous(memory_format=self.memory_format)
        logits = self.backbone(batch).float().unflatten(0, (len(views), len(x)))
        return torch.log(torch.softmax(logits, dim=2).mean(dim=0))


def check_network(path, settings, n_classes, state):
    """Check the network ``settings`` describe against the file's tensors.

    The network is built on PyTorch's ``meta`` device (shapes only, nothing
    allocated): settings that ask for more than the tensors hold (a hidden
    layer of 10**6 units, say) are refused before any memory is used.
    """
    image_size = settings.get("image_size")
    if not isinstance(image_size, int) or not 1 <= image_size <= 4096:
        raise ValueError(f"{str(path)!r} asks for image_size={image_size!r}; a model "
                         "file may ask for an integer from 1 to 4096. The file is "
                         "damaged or crafted: use the original.")
    try:
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in LeukocyteVGG(
                n_classes, batch_norm=settings["batch_norm"], image_size=image_size,
                **settings["module"]).state_dict().items()}
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        raise ValueError(f"{str(path)!r} has network settings leukosk cannot build "
                         f"({exc}); the file is damaged or crafted.") from None
    theirs = {k: tuple(v.shape) for k, v in state.items()}
    if shapes != theirs:
        wrong = sorted(k for k in set(shapes) | set(theirs) if shapes.get(k) != theirs.get(k))
        raise ValueError(
            f"{str(path)!r}: its settings do not match its tensors ({wrong[0]}: "
            f"{theirs.get(wrong[0])} in the file, {shapes.get(wrong[0])} by the "
            "settings); the file is damaged or crafted: use the original.")


def check_references(path, module, references):
    """Check per-lab reference statistics (``lab_shift_references``, their
    form already checked on reading) against the network's batch-norm layers:
    as many channels, layer by layer, and no more layers than it has."""
    channels = [len(m.running_mean) for m in module.modules()
                if isinstance(m, nn.BatchNorm2d) and m.running_mean is not None]
    for name, layers in references.items():
        if len(layers) > len(channels) or any(
                len(mean) != n for (mean, _), n in zip(layers, channels)):
            raise ValueError(
                f"{str(path)!r}: its lab_shift_references[{name!r}] do not match the "
                "network's batch-norm layers; the file is damaged or crafted: use the "
                "original.")


def check_network_metadata(path, network, n_classes, state):
    """Check a model file's network settings (its ``network`` metadata) against
    their bounds, then against the file's tensors (:func:`check_network`).

    Raises
    ------
    ValueError
        Naming the file: the settings are out of bounds or do not describe
        the tensors (a damaged or crafted file).
    """
    try:
        module = dict(network["module"])
        check_module_settings(module, "the model file's network")
        settings = {"batch_norm": bool(network["batch_norm"]), "module": module,
                    "image_size": network["image_size"]}
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"{str(path)!r} has broken network settings ({exc}); the "
                         "file is damaged or crafted: use the original.") from None
    check_network(path, settings, n_classes, state)
