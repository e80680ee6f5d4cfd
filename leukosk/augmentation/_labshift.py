"""Augmentations that model differences between labs, and a chain of augmenters.

Every lab stains, magnifies, focuses and compresses differently. These
augmenters draw such differences at random, per image, per batch, on the
training device, so that a model trained on one lab's images has seen the
others' kind of variation:

* :class:`RandomScaleCrop`: magnification and crop (other labs crop tighter:
  the cell fills the frame);
* :class:`RandomStainJitter`: stain colour, in haematoxylin-eosin-DAB optical
  density space (Tellez et al. 2018);
* :class:`RandomColorJitter`: brightness, contrast, saturation and hue (the
  camera, the white balance, the background);
* :class:`RandomBlur`: focus;
* :class:`RandomJPEG`: compression;
* :class:`Augmentations`: several augmenters in a row.

Like :class:`~leukosk.RandomReflectRotate`, each is a scikit-learn
transformer that changes nothing at prediction time, usable as the
classifier's ``augment`` or as a pipeline step, seeded by ``random_state``.
All work on ``uint8`` or float ``(n, C, H, W)`` tensors and keep shape, dtype
and device.
"""

import math
import numbers

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import _BaseComposition

from ._augment import BatchAugmentation

__all__ = ["RandomScaleCrop", "RandomStainJitter", "RandomColorJitter", "RandomBlur",
           "RandomJPEG", "Augmentations", "AUGMENTERS"]


def _range(name, value, low=-math.inf, high=math.inf):
    """``value`` as a checked ``(low, high)`` pair of floats."""
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r}: pass a (low, high) pair.") from None
    if not (math.isfinite(a) and math.isfinite(b)) or a > b or a < low or b > high:
        raise ValueError(f"{name}={value!r}: need finite low <= high within "
                         f"[{low}, {high}].")
    return a, b


def _uniform(n, bounds, generator, device):
    low, high = bounds
    return (low + (high - low) * torch.rand(n, generator=generator)).to(device)


def _as_float(images):
    """(float images in [0, 1], function restoring the input's dtype)."""
    if images.dtype == torch.uint8:
        return images.float().div_(255), lambda x: x.mul(255).round_().clamp_(0, 255).to(torch.uint8)
    return images.float(), lambda x: x.clamp(0, 1).to(images.dtype)


def _check_batch(images):
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected a (n, 3, H, W) batch, got shape {tuple(images.shape)}.")


class _LabShift(BatchAugmentation):
    """Shared checks: subclasses implement ``_apply(float_images, generator)``."""

    def augment_batch(self, images, generator=None):
        """Augment a CHW batch on its device; shape, dtype and device are kept.

        Parameters
        ----------
        images : torch.Tensor of shape (n, 3, H, W), uint8 or float in [0, 1]
        generator : torch.Generator, optional
            CPU generator for the draws; ``None`` uses torch's global RNG.

        Returns
        -------
        torch.Tensor like ``images``
        """
        self._validate()
        _check_batch(images)
        if len(images) == 0:
            return images
        x, restore = _as_float(images)
        return restore(self._apply(x, generator))


class RandomScaleCrop(_LabShift):
    """Random magnification around the centre, with a small random shift.

    Each image is zoomed by a factor drawn from ``scale`` (the side of the
    region kept, as a fraction: below 1 zooms in, so the cell fills more of
    the frame, as in labs that crop tighter; above 1 zooms out, the border
    mirrored) and shifted by up to ``translate`` of its side.

    Parameters
    ----------
    scale : (float, float), default=(0.6, 1.2)
        Range of the side of the region kept (1: unchanged).
    translate : float, default=0.05
        Largest shift, as a fraction of the side.
    random_state : None, int or RandomState, default=None

    Examples
    --------
    >>> import numpy as np
    >>> from leukosk import RandomScaleCrop
    >>> X = np.zeros((2, 32, 32, 3), np.uint8)
    >>> RandomScaleCrop(random_state=0).augment(X).shape
    (2, 32, 32, 3)
    """

    def __init__(self, scale=(0.6, 1.2), translate=0.05, random_state=None):
        self.scale = scale
        self.translate = translate
        self.random_state = random_state

    def _validate(self):
        _range("scale", self.scale, 0.05, 4.0)
        if not isinstance(self.translate, numbers.Real) or not 0 <= self.translate <= 0.5:
            raise ValueError(f"translate={self.translate!r}: a fraction in [0, 0.5].")

    def _apply(self, x, generator):
        n = len(x)
        s = _uniform(n, _range("scale", self.scale), generator, x.device)
        shift = _uniform(2 * n, (-self.translate, self.translate), generator,
                         x.device).view(n, 2) * 2
        zero = torch.zeros_like(s)
        theta = torch.stack([torch.stack([s, zero, shift[:, 0]], 1),
                             torch.stack([zero, s, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection",
                             align_corners=False)


#: Ruifrok & Johnston's haematoxylin, eosin and DAB stain vectors (optical
#: density per RGB channel), as in scikit-image's ``rgb2hed``.
_RGB_FROM_HED = torch.tensor([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11],
                              [0.27, 0.57, 0.78]])
_HED_FROM_RGB = torch.linalg.inv(_RGB_FROM_HED)


class RandomStainJitter(_LabShift):
    """Random stain colour: each stain's amount scaled and shifted per image.

    The image is taken to optical density (``-log`` of the intensity) and
    unmixed into haematoxylin, eosin and DAB; each stain ``s`` becomes
    ``s * a + b`` with ``a`` drawn from ``1 +- scale`` and ``b`` from
    ``+- shift``, then the colours are mixed back (Tellez et al. 2018,
    "Whole-slide mitosis detection in H&E breast histology using PHH3 as a
    reference to train distilled stain-invariant convolutional networks").
    Romanowsky stains of blood films are not H&E, but their purple nuclei and
    pink cytoplasm vary along the same axes.

    Parameters
    ----------
    scale : float, default=0.2
        Largest relative change of each stain's amount.
    shift : float, default=0.05
        Largest shift of each stain's optical density.
    random_state : None, int or RandomState, default=None

    Examples
    --------
    >>> import numpy as np
    >>> from leukosk import RandomStainJitter
    >>> X = np.full((2, 8, 8, 3), 128, np.uint8)
    >>> RandomStainJitter(random_state=0).augment(X).dtype
    dtype('uint8')
    """

    def __init__(self, scale=0.2, shift=0.05, random_state=None):
        self.scale = scale
        self.shift = shift
        self.random_state = random_state

    def _validate(self):
        for name in ("scale", "shift"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or not 0 <= value <= 1:
                raise ValueError(f"{name}={value!r}: a number in [0, 1].")

    def _apply(self, x, generator):
        n = len(x)
        a = _uniform(3 * n, (1 - self.scale, 1 + self.scale), generator, x.device)
        b = _uniform(3 * n, (-self.shift, self.shift), generator, x.device)
        od = -torch.log(x.clamp_min(1 / 255)).permute(0, 2, 3, 1)  # (n, H, W, 3)
        stains = od @ _HED_FROM_RGB.to(x.device)
        stains = stains * a.view(n, 1, 1, 3) + b.view(n, 1, 1, 3)
        rgb = torch.exp(-(stains @ _RGB_FROM_HED.to(x.device)))
        return rgb.permute(0, 3, 1, 2)


# YIQ: the hue is the angle in the I-Q plane.
_YIQ_FROM_RGB = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322],
                              [0.211, -0.523, 0.312]])
_RGB_FROM_YIQ = torch.linalg.inv(_YIQ_FROM_RGB)


class RandomColorJitter(_LabShift):
    """Random brightness, contrast, saturation and hue, drawn per image.

    Brightness multiplies the image, contrast scales it around its mean grey
    level, saturation blends it with its grey version, and hue rotates its
    colours (in YIQ space) by up to ``hue`` of a turn; each factor is drawn
    from ``1 +- brightness`` (and so on) for every image.

    Parameters
    ----------
    brightness, contrast, saturation : float, default=0.2, 0.2, 0.3
        Largest relative change.
    hue : float, default=0.05
        Largest hue rotation, as a fraction of a full turn (at most 0.5).
    random_state : None, int or RandomState, default=None

    Examples
    --------
    >>> import numpy as np
    >>> from leukosk import RandomColorJitter
    >>> X = np.full((2, 8, 8, 3), 128, np.uint8)
    >>> RandomColorJitter(random_state=0).augment(X).shape
    (2, 8, 8, 3)
    """

    def __init__(self, brightness=0.2, contrast=0.2, saturation=0.3, hue=0.05,
                 random_state=None):
        self.brightness = brightness
        self.contrast = contrast
        self.saturation = saturation
        self.hue = hue
        self.random_state = random_state

    def _validate(self):
        for name in ("brightness", "contrast", "saturation"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or not 0 <= value <= 1:
                raise ValueError(f"{name}={value!r}: a number in [0, 1].")
        if not isinstance(self.hue, numbers.Real) or not 0 <= self.hue <= 0.5:
            raise ValueError(f"hue={self.hue!r}: a fraction of a turn in [0, 0.5].")

    def _apply(self, x, generator):
        n, device = len(x), x.device
        view = (n, 1, 1, 1)
        brightness = _uniform(n, (1 - self.brightness, 1 + self.brightness), generator, device)
        contrast = _uniform(n, (1 - self.contrast, 1 + self.contrast), generator, device)
        saturation = _uniform(n, (1 - self.saturation, 1 + self.saturation), generator, device)
        angle = _uniform(n, (-self.hue, self.hue), generator, device) * 2 * math.pi
        x = x * brightness.view(view)
        gray = (x * _YIQ_FROM_RGB[0].to(device).view(1, 3, 1, 1)).sum(1, keepdim=True)
        x = gray.mean((2, 3), keepdim=True) + (x - gray.mean((2, 3), keepdim=True)) \
            * contrast.view(view)
        gray = (x * _YIQ_FROM_RGB[0].to(device).view(1, 3, 1, 1)).sum(1, keepdim=True)
        x = gray + (x - gray) * saturation.view(view)
        cos, sin = torch.cos(angle), torch.sin(angle)
        one, zero = torch.ones_like(cos), torch.zeros_like(cos)
        rotation = torch.stack([torch.stack([one, zero, zero], 1),
                                torch.stack([zero, cos, -sin], 1),
                                torch.stack([zero, sin, cos], 1)], 1)  # (n, 3, 3)
        matrix = _RGB_FROM_YIQ.to(device) @ rotation @ _YIQ_FROM_RGB.to(device)
        return torch.einsum("nij,njhw->nihw", matrix, x).clamp(0, 1)


class RandomBlur(_LabShift):
    """Random Gaussian blur (focus), its standard deviation drawn per image.

    Parameters
    ----------
    sigma : (float, float), default=(0.0, 1.0)
        Range of the standard deviation, in pixels of the batch (0: sharp).
    random_state : None, int or RandomState, default=None

    Examples
    --------
    >>> import numpy as np
    >>> from leukosk import RandomBlur
    >>> X = np.zeros((2, 16, 16, 3), np.uint8)
    >>> RandomBlur(random_state=0).augment(X).shape
    (2, 16, 16, 3)
    """

    def __init__(self, sigma=(0.0, 1.0), random_state=None):
        self.sigma = sigma
        self.random_state = random_state

    def _validate(self):
        _range("sigma", self.sigma, 0.0, 10.0)

    def _apply(self, x, generator):
        n, c, h, w = x.shape
        bounds = _range("sigma", self.sigma)
        sigma = _uniform(n, bounds, generator, x.device).clamp_min(1e-3)
        radius = max(1, min(math.ceil(3 * bounds[1]), (min(h, w) - 1) // 2))
        offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
        kernel = torch.exp(-offsets.view(1, -1) ** 2 / (2 * sigma.view(-1, 1) ** 2))
        kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)
        flat = x.reshape(1, n * c, h, w)
        flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"),
                        kernel.view(n * c, 1, 1, -1), groups=n * c)
        flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"),
                        kernel.view(n * c, 1, -1, 1), groups=n * c)
        return flat.view(n, c, h, w)


class RandomJPEG(_LabShift):
    """Random JPEG compression, its quality drawn per image.

    Encoded and decoded with Pillow on the CPU (the batch travels there and
    back from a GPU).

    Parameters
    ----------
    quality : (int, int), default=(50, 100)
        Range of the JPEG quality (1-100).
    random_state : None, int or RandomState, default=None

    Examples
    --------
    >>> import numpy as np
    >>> from leukosk import RandomJPEG
    >>> X = np.zeros((2, 16, 16, 3), np.uint8)
    >>> RandomJPEG(random_state=0).augment(X).shape
    (2, 16, 16, 3)
    """

    def __init__(self, quality=(50, 100), random_state=None):
        self.quality = quality
        self.random_state = random_state

    def _validate(self):
        _range("quality", self.quality, 1, 100)

    def _apply(self, x, generator):
        import io

        from PIL import Image

        low, high = (int(round(q)) for q in _range("quality", self.quality))
        qualities = torch.randint(low, high + 1, (len(x),), generator=generator)
        images = x.detach().mul(255).round().clamp(0, 255).to("cpu", torch.uint8)
        out = []
        for image, quality in zip(images.permute(0, 2, 3, 1).numpy(), qualities.tolist()):
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
            with Image.open(buffer) as decoded:
                out.append(np.asarray(decoded.convert("RGB")))
        return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(
            x.device, torch.float32).div_(255)


class Augmentations(_BaseComposition, BatchAugmentation):
    """Several augmenters applied in a row, each with its own random draws.

    Parameters
    ----------
    steps : list of (str, augmenter)
        Named augmenters, applied in order; ``set_params(name__param=...)``
        reaches them (as in a :class:`~sklearn.pipeline.Pipeline`).
    random_state : None, int or RandomState, default=None
        Seeds the steps that have no ``random_state`` of their own.

    Examples
    --------
    >>> import numpy as np
    >>> from leukosk import Augmentations, RandomReflectRotate, RandomStainJitter
    >>> augment = Augmentations([("reflect_rotate", RandomReflectRotate()),
    ...                          ("stain", RandomStainJitter())], random_state=0)
    >>> augment.set_params(stain__scale=0.3).augment(np.zeros((2, 8, 8, 3), np.uint8)).shape
    (2, 8, 8, 3)
    """

    def __init__(self, steps, random_state=None):
        self.steps = steps
        self.random_state = random_state

    def get_params(self, deep=True):
        return self._get_params("steps", deep=deep)

    def set_params(self, **params):
        self._set_params("steps", **params)
        return self

    def _validate(self):
        if not self.steps:
            raise ValueError("steps is empty: name at least one augmenter.")
        self._validate_names([name for name, _ in self.steps])
        for name, step in self.steps:
            if not isinstance(step, BatchAugmentation):
                raise TypeError(f"step {name!r} is a {type(step).__name__}, not a "
                                "leukosk augmenter.")
            step._validate()

    def make_generator(self):
        """One generator per step (a tuple)."""
        rng = check_random_state(self.random_state) if self.random_state is not None \
            else None
        generators = []
        for _, step in self.steps:
            generator = step.make_generator()
            if generator is None and rng is not None:
                generator = torch.Generator().manual_seed(int(rng.randint(2**31 - 1)))
            generators.append(generator)
        return tuple(generators)

    def augment_batch(self, images, generator=None):
        """Apply every step in order (``generator``: one per step, or None)."""
        self._validate()
        generators = generator if generator is not None else (None,) * len(self.steps)
        for (_, step), gen in zip(self.steps, generators):
            images = step.augment_batch(images, gen)
        return images


#: The lab-shift augmenters (and the chain), for persistence by name.
AUGMENTERS = (RandomScaleCrop, RandomStainJitter, RandomColorJitter, RandomBlur,
              RandomJPEG, Augmentations)
