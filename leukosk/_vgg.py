"""The torch module: preprocessing + torchvision VGG-19 with a new last layer.

``LeukocyteVGG`` is torchvision's VGG-19 (optionally with batch norm) whose last
``Linear`` (``classifier[6]``, 4096 -> 1000) is replaced by a freshly initialised
4096 -> ``n_classes`` layer, as in Jarjees et al. (2022). The other fully
connected layers keep their (pretrained) weights. A small preprocessing stage in
front converts ``uint8``/float CHW batches to normalised float and resizes the
whole image (no crop) to ``image_size``, on whatever device the module is on.
"""

import torch
from torch import nn
from torchvision.models.vgg import VGG, cfgs, make_layers

from ._augment import dihedral_views
from ._images import resize_batch
from ._weights import load_state_dict, normalization, resolve_weights

__all__ = ["LeukocyteVGG", "HEAD_PREFIX"]

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


class Preprocess(nn.Module):
    """uint8 or [0, 1] float CHW batch -> cropped, resized, normalised float batch."""

    def __init__(self, image_size, mean, std, crop=1.0, standardize=False):
        super().__init__()
        self.image_size = image_size
        self.crop = crop
        self.standardize = standardize
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1),
                             persistent=False)

    def describe(self):
        """The preprocessing as plain data (stored with saved models)."""
        return {"crop": self.crop, "mean": self.mean.flatten().tolist(),
                "std": self.std.flatten().tolist(), "image_size": self.image_size,
                "standardize": self.standardize}

    def forward(self, x):
        x = resize_batch(center_crop(x, self.crop), self.image_size)
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
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
    """
    config = [v if v == "M" else max(1, round(v * width)) for v in cfgs["E"]]
    backbone = VGG(make_layers(config, batch_norm=batch_norm), dropout=dropout)
    backbone.avgpool = nn.AdaptiveAvgPool2d(pool_size)
    first = backbone.classifier[0]
    if (first.in_features, first.out_features) != (config[-2] * pool_size**2, hidden_units):
        backbone.classifier[0] = nn.Linear(config[-2] * pool_size**2, hidden_units)
    if backbone.classifier[3].out_features != hidden_units:
        backbone.classifier[3] = nn.Linear(hidden_units, hidden_units)
    backbone.classifier[6] = nn.Linear(hidden_units, n_classes)
    return backbone


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
    """Start the last layer from a trained model's units of the same classes."""
    trained = getattr(weights, "meta", {}).get("classes")
    if not classes or trained is None or not set(classes) <= set(map(str, trained)):
        return
    rows = [list(map(str, trained)).index(c) for c in classes]
    head = backbone.classifier[6]
    weight, bias = state.get(_TV_HEAD_PREFIX + "weight"), state.get(_TV_HEAD_PREFIX + "bias")
    if weight is None or weight.shape[1] != head.in_features:
        return
    with torch.no_grad():
        head.weight.copy_(weight[rows])
        head.bias.copy_(bias[rows])


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
    classes : list of str, default=None
        Names of the outputs. With weights of a trained leukosk model whose
        classes include every one of them, the new last layer starts from
        that model's units for the same classes (instead of at random).
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
                 crop=1.0, standardize=False, classes=None):
        super().__init__()
        resolved = resolve_weights(weights, batch_norm=batch_norm)
        state = load_state_dict(resolved, progress=progress)
        backbone = _vgg19(n_classes, batch_norm, width, dropout, hidden_units, pool_size)
        if state is not None:
            _load_backbone(backbone, state, source=str(weights))
            _reuse_head(backbone, resolved, state, classes)
        if freeze_features:
            backbone.features.requires_grad_(False)
        self.freeze_features = freeze_features
        self.preprocess = Preprocess(image_size, *normalization(resolved), crop=crop,
                                     standardize=standardize)
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
