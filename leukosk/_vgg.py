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
from torchvision.models import vgg19, vgg19_bn

from ._augment import dihedral_views
from ._images import resize_batch
from ._weights import load_state_dict, normalization, resolve_weights

__all__ = ["LeukocyteVGG", "HEAD_PREFIX"]

#: Parameter-name prefix of the replaced last layer inside ``LeukocyteVGG``.
HEAD_PREFIX = "backbone.classifier.6."
_TV_HEAD_PREFIX = "classifier.6."


class Preprocess(nn.Module):
    """uint8 or [0, 1] float CHW batch -> resized, normalised float batch."""

    def __init__(self, image_size, mean, std):
        super().__init__()
        self.image_size = image_size
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1),
                             persistent=False)

    def forward(self, x):
        x = resize_batch(x, self.image_size)
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        return (x - self.mean) / self.std


def _load_backbone(backbone, state, source):
    state = {k: v for k, v in state.items() if not k.startswith(_TV_HEAD_PREFIX)}
    result = backbone.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(_TV_HEAD_PREFIX)]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"weights from {source} do not match torchvision's "
            f"{type(backbone).__name__} layout: missing {missing[:4]}, unexpected "
            f"{result.unexpected_keys[:4]}. Pass a state dict of "
            "torchvision.models.vgg19() (or vgg19_bn() with batch_norm=True).")


class LeukocyteVGG(nn.Module):
    """VGG-19 with its last layer replaced for ``n_classes`` cell types.

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
    progress : bool, default=False
        Show a progress bar while downloading weights.
    channels_last : bool, default=False
        Keep weights and activations in channels-last (NHWC) memory layout,
        which convolution kernels on GPUs (with mixed precision) and on
        recent CPUs run faster.

    Examples
    --------
    >>> import torch
    >>> from leukosk._vgg import LeukocyteVGG
    >>> net = LeukocyteVGG(n_classes=8, image_size=32)
    >>> net(torch.zeros(2, 3, 40, 40, dtype=torch.uint8)).shape
    torch.Size([2, 8])
    """

    def __init__(self, n_classes, weights=None, batch_norm=False, image_size=224,
                 freeze_features=False, dropout=0.5, hidden_units=4096,
                 progress=False, channels_last=False):
        super().__init__()
        resolved = resolve_weights(weights, batch_norm=batch_norm)
        state = load_state_dict(resolved, progress=progress)
        backbone = (vgg19_bn if batch_norm else vgg19)(weights=None, dropout=dropout)
        if state is not None:
            _load_backbone(backbone, state, source=str(weights))
        if hidden_units != backbone.classifier[3].out_features:
            backbone.classifier[0] = nn.Linear(backbone.classifier[0].in_features,
                                               hidden_units)
            backbone.classifier[3] = nn.Linear(hidden_units, hidden_units)
        backbone.classifier[6] = nn.Linear(hidden_units, n_classes)
        if freeze_features:
            backbone.features.requires_grad_(False)
        self.freeze_features = freeze_features
        self.preprocess = Preprocess(image_size, *normalization(resolved))
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
