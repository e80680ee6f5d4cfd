"""What the network looked at: Grad-CAM for VGG-19 (last convolutional block).

Grad-CAM (Selvaraju et al. 2017, "Grad-CAM: visual explanations from deep
networks via gradient-based localization") weighs the last convolutional
block's feature maps by the gradient of a class's score and keeps the positive
part: the regions that raised that class. Here it is a few dozen lines of
forward hooks on :class:`~leukosk.LeukocyteVGG` (a library such as captum
would add a dependency for the same arithmetic), batched, on the CPU or CUDA,
with or without ``amp``; maps come back in the frame of the input images
(the model's view is undone: outside the region it saw, central crop or
square around the cell, the map is 0).
"""

import numpy as np
import torch
import torch.nn.functional as F

from .utils._images import check_images, chw_batch
from .utils._labels import encode
from .utils._precision import autocast

__all__ = ["grad_cam"]


def _last_block(module):
    """The output of the last convolutional block: the activation before
    VGG's final max-pooling."""
    features = module.backbone.features
    return features[len(features) - 2]


def _class_index(clf, target, n):
    if target is None:
        return None
    labels = np.broadcast_to(np.asarray(target, dtype=object), (n,))
    return torch.from_numpy(encode(labels, clf.classes_, what="target"))


def _batch_maps(clf, module, images, index):
    """Grad-CAM of one batch (n, 3, H, W uint8 or float) -> (maps, class indices)."""
    captured = {}

    def root(layer, inputs, out):
        # The graph starts at the last block's output: Grad-CAM differentiates
        # by it alone, so nothing before it need require a gradient (uint8
        # input, ``freeze_features=True``).
        captured["a"] = out.detach().requires_grad_(True)
        return captured["a"]

    handle = _last_block(module).register_forward_hook(root)
    try:
        x = images.to(clf.device_)
        with torch.enable_grad(), autocast(clf.device_, clf.amp_dtype_):
            logits = module(x).float()
        activations = captured["a"]
        if index is None:
            index = logits.argmax(1).cpu()
        score = logits.gather(1, index.to(logits.device).view(-1, 1)).sum()
        gradients, = torch.autograd.grad(score, activations)
    finally:
        handle.remove()
    weights = gradients.float().mean(dim=(2, 3), keepdim=True)
    maps = F.relu((weights * activations.float()).sum(1, keepdim=True))
    peak = maps.amax(dim=(2, 3), keepdim=True)
    return (maps / peak.clamp_min(1e-12)).detach(), index


def _to_frame(cam, height, width, box):
    """A (1, 1, h, w) map back into the (height, width) frame of the input,
    where the network saw the region ``box`` (fractions x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box.tolist()
    left, top = round(x0 * width), round(y0 * height)
    w, h = max(1, round(x1 * width) - left), max(1, round(y1 * height) - top)
    inside = F.interpolate(cam, size=(h, w), mode="bilinear", align_corners=False)
    frame = torch.zeros(height, width)
    rows = slice(max(top, 0), min(top + h, height))
    cols = slice(max(left, 0), min(left + w, width))
    frame[rows, cols] = inside[0, 0, rows.start - top:rows.stop - top,
                               cols.start - left:cols.stop - left].cpu().clamp(0, 1)
    return frame.numpy()


def grad_cam(clf, X, target=None, *, batch_size=32):
    """Grad-CAM maps of a fitted :class:`~leukosk.VGG19LeukocyteClassifier`.

    Parameters
    ----------
    clf : fitted VGG19LeukocyteClassifier
    X : array of shape (n, H, W, 3) or sequence of image paths
    target : None, label or array-like of labels, default=None
        The class whose evidence is shown: ``None`` for each image's predicted
        class, one label for all, or one per image.
    batch_size : int, default=32

    Returns
    -------
    maps : ndarray of shape (n, H, W), float32 in [0, 1], or list of arrays
        One map per image, in the image's own frame (each its own size when
        ``X`` are paths), 1 where the evidence is strongest.
    labels : ndarray of shape (n,)
        The class each map explains.

    Examples
    --------
    >>> import numpy as np
    >>> from leukosk import VGG19LeukocyteClassifier
    >>> from leukosk.explain import grad_cam
    >>> X = np.random.default_rng(0).integers(0, 256, (4, 40, 40, 3), dtype=np.uint8)
    >>> clf = VGG19LeukocyteClassifier(weights=None, image_size=32, max_epochs=1,
    ...     verbose=0, module__width=0.25, module__hidden_units=16).fit(X, [0, 1] * 2)
    >>> maps, labels = grad_cam(clf, X)
    >>> maps.shape, float(maps.max()) <= 1.0
    ((4, 40, 40), True)
    """
    clf.check_is_fitted()
    X = check_images(X)
    module = clf._plain_module()
    was_training = module.training
    module.eval()
    index = _class_index(clf, target, len(X))
    maps, explained = [], []
    try:
        for start in range(0, len(X), batch_size):
            chunk = X[start:start + batch_size]
            images = chw_batch(chunk)
            sub = None if index is None else index[start:start + batch_size]
            if isinstance(images, list):  # files of different sizes: one at a time
                for image, i in zip(images, range(len(images))):
                    cams, used = _batch_maps(clf, module, image[None],
                                             None if sub is None else sub[i:i + 1])
                    box = module.preprocess.boxes(image[None])[0]
                    maps.append(_to_frame(cams, *image.shape[-2:], box))
                    explained.append(int(used[0]))
                continue
            cams, used = _batch_maps(clf, module, images, sub)
            boxes = module.preprocess.boxes(images)
            maps.extend(_to_frame(c[None], *images.shape[-2:], box)
                        for c, box in zip(cams, boxes))
            explained.extend(used.tolist())
    finally:
        module.train(was_training)
    labels = clf.classes_[np.asarray(explained, dtype=int)]
    same_size = len({m.shape for m in maps}) == 1
    return (np.stack(maps).astype(np.float32) if same_size else maps), labels
