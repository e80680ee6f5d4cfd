"""What the network looked at: Grad-CAM for VGG-19 (last convolutional block).

Grad-CAM (Selvaraju et al. 2017, "Grad-CAM: visual explanations from deep
networks via gradient-based localization") weighs the last convolutional
block's feature maps by the gradient of a class's score and keeps the positive
part: the regions that raised that class. Here it is a few dozen lines of
forward hooks on :class:`~leukosk.LeukocyteVGG` (a library such as captum
would add a dependency for the same arithmetic), batched, on the CPU or CUDA,
with or without ``amp``; maps come back in the frame of the input images
(the model's view is undone: outside the region it saw, central crop or
square around the cell, the map is 0). :func:`overlay` lays a map over its
image; :func:`write_grad_cam_overlays` writes one such overlay per image (what
``leukosk explain`` does).
"""

import os
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils import Bunch

from .utils._images import check_images, chw_batch, decode_image
from .utils._labels import encode
from .utils._output import (check_output_folder, output_path, replaced_folder, safe_name,
                            write_csv)
from .utils._precision import autocast

__all__ = ["grad_cam", "overlay", "write_grad_cam_overlays"]

#: The listing :func:`write_grad_cam_overlays` writes beside the overlays.
OVERLAYS_CSV = "overlays.csv"


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


def overlay(image, cam, alpha=0.45):
    """An RGB image with a Grad-CAM map laid over it (jet colours), uint8.

    Needs matplotlib (for the colour map): ``pip install "leukosk[plot]"``.

    Parameters
    ----------
    image : array of shape (H, W, 3)
        ``uint8``, or floats in [0, 1].
    cam : array of shape (H, W)
        A map in [0, 1] (from :func:`grad_cam`).
    alpha : float, default=0.45
        Opacity of the map.

    Returns
    -------
    ndarray of shape (H, W, 3), uint8

    Examples
    --------
    >>> import numpy as np
    >>> from leukosk.explain import overlay
    >>> overlay(np.zeros((2, 2, 3), np.uint8), np.ones((2, 2)))[0, 0].tolist()
    [57, 0, 0]
    """
    try:
        from matplotlib import colormaps
    except ImportError as exc:
        raise ImportError("overlays need matplotlib: pip install 'leukosk[plot]'") from exc
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
    heat = colormaps["jet"](np.clip(cam, 0, 1))[..., :3] * 255
    return np.clip((1 - alpha) * image + alpha * heat, 0, 255).astype(np.uint8)


def write_grad_cam_overlays(clf, images, out_dir, target=None, *, batch_size=32):
    """Write, for each image, the image with its Grad-CAM map laid over it.

    Each image file is decoded once, for the map and for the overlay, a
    batch at a time. ``out_dir`` is replaced as a whole: the new overlays are
    written beside it and renamed into place, so that an interruption leaves
    the previous result or the new one, never a mix; a folder holding other
    files is refused. It may not lie inside an input folder.

    Parameters
    ----------
    clf : fitted VGG19LeukocyteClassifier
    images : sequence of image paths, or array of shape (n, H, W, 3)
    out_dir : path-like
        The output folder, created if missing.
    target : None, label or array-like of labels, default=None
        The class to explain: ``None`` for each image's predicted class, one
        label for all, or one per image (as :func:`grad_cam`).
    batch_size : int, default=32

    Returns
    -------
    Bunch
        ``overlays`` (paths of the PNG files, one per image, in order),
        ``labels`` (the class each explains) and ``listing`` (the path of
        ``overlays.csv``: columns ``image``, ``overlay``, ``class``).

    Notes
    -----
    An overlay is named ``<stem>_gradcam_<class>.png`` after its image file
    (``<index>_gradcam_<class>.png`` for an array): sanitised, and unique
    even on a case-insensitive file system; images whose stems repeat (as
    ``a/cell1.jpg`` and ``b/cell1.png``) are named by their path below the
    folder the images share.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from leukosk import VGG19LeukocyteClassifier
    >>> from leukosk.explain import write_grad_cam_overlays
    >>> X = np.random.default_rng(0).integers(0, 256, (4, 40, 40, 3), dtype=np.uint8)
    >>> clf = VGG19LeukocyteClassifier(weights=None, image_size=32, max_epochs=1,
    ...     verbose=0, module__width=0.25, module__hidden_units=16).fit(X, ["a", "b"] * 2)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     result = write_grad_cam_overlays(clf, X, pathlib.Path(d, "cams"), target="a")
    ...     [p.name for p in result.overlays[:2]], result.listing.name
    (['0_gradcam_a.png', '1_gradcam_a.png'], 'overlays.csv')
    """
    from PIL import Image

    clf.check_is_fitted()
    images = check_images(images)
    paths = not isinstance(images, np.ndarray)
    n = len(images)
    out = check_output_folder(out_dir, images if paths else (), option="out_dir")
    targets = None if target is None else np.broadcast_to(
        np.asarray(target, dtype=object), (n,))
    sources = images if paths else [str(i) for i in range(n)]
    name = _overlay_namer(sources, paths)
    names, labels = [], []
    with replaced_folder(out, owned=_is_overlay) as new:
        for start in range(0, n, batch_size):
            chunk = images[start:start + batch_size]
            pixels = [decode_image(p) for p in chunk] if paths else chunk
            sub = None if targets is None else targets[start:start + batch_size]
            for i, (cam, label) in enumerate(_chunk_maps(clf, pixels, sub)):
                names.append(name(start + i, label))
                labels.append(label)
                Image.fromarray(overlay(pixels[i], cam)).save(
                    output_path(new, names[-1]), format="PNG")
        write_csv(new / OVERLAYS_CSV, ["image", "overlay", "class"],
                  zip(sources, names, map(str, labels)))
    return Bunch(overlays=[out / name for name in names], labels=np.array(labels),
                 listing=out / OVERLAYS_CSV)


def _chunk_maps(clf, pixels, targets):
    """(map, label) of each decoded image of a chunk: in one batch if they
    share a size, else one at a time (as :func:`grad_cam` does for files)."""
    same_size = len({np.shape(p) for p in pixels}) == 1
    groups = [(np.stack(pixels), targets)] if same_size else [
        (np.asarray(p)[None], None if targets is None else targets[i:i + 1])
        for i, p in enumerate(pixels)]
    for batch, sub in groups:
        maps, labels = grad_cam(clf, batch, target=None if sub is None else list(sub),
                                batch_size=len(batch))
        yield from zip(maps, labels)


def _is_overlay(name):
    return name == OVERLAYS_CSV or (name.endswith(".png") and "_gradcam_" in name)


def _overlay_namer(sources, paths):
    """``name(i, label)``: the file name of image ``i``'s overlay. Its stem,
    or (for stems that repeat, as in a/cell1.jpg and b/cell1.png) its path
    below the inputs' common folder; sanitised, with the explained class,
    unique among the names given before (case-insensitively)."""
    stems = [safe_name(Path(f).stem) for f in sources]
    repeated = {stem for stem, k in Counter(stems).items() if k > 1}
    if paths and repeated:
        root = os.path.commonpath([os.path.dirname(os.path.abspath(f)) for f in sources])
        stems = [safe_name(os.path.relpath(os.path.abspath(f), root))
                 if stem in repeated else stem for f, stem in zip(sources, stems)]
    taken = set()

    def name(i, label):
        chosen, k = f"{stems[i]}_gradcam_{safe_name(label)}.png", 1
        while chosen.lower() in taken:  # case-insensitive file systems too
            k += 1
            chosen = f"{stems[i]}-{k}_gradcam_{safe_name(label)}.png"
        taken.add(chosen.lower())
        return chosen

    return name
