"""Random reflection and rotation (the paper's augmentation) and TTA symmetries.

Two ways to use it, one implementation:

* ``VGG19LeukocyteClassifier(augment=RandomReflectRotate())``: the classifier
  augments every training batch on the training device, freshly each epoch.
* ``make_pipeline(RandomReflectRotate(), VGG19LeukocyteClassifier())``:
  ``fit_transform`` returns :class:`AugmentedImages`, which hands the images
  *and the augmenter* to the classifier, so the classifier again augments each
  batch each epoch. ``transform`` (used by ``predict`` and ``score``) returns
  the images unchanged: prediction is never augmented. As with scikit-learn's
  ``TargetEncoder``, ``fit_transform(X)`` therefore differs from
  ``fit(X).transform(X)``, on purpose.

The batched kernels work on ``uint8`` or float tensors of shape (n, C, H, W)
on any device.
"""

import math
import numbers

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state

from ..utils._images import check_images, take_images

__all__ = ["BatchAugmentation", "RandomReflectRotate", "AugmentedImages",
           "TrainingAugmentation", "split_augmented", "reflect_rotate",
           "dihedral_views", "FILL_MODES"]

#: Corner fills: mirror the image ("reflect"), repeat its edge pixels
#: ("border"), or a constant grey level (a number in the image's scale).
FILL_MODES = ("reflect", "border")


def _rotation_grid(angles, height, width):
    """Sampling grid rotating each image by ``angles`` (degrees, counter-clockwise)."""
    radians = angles * (math.pi / 180.0)
    cos, sin = torch.cos(radians), torch.sin(radians)
    # Rotation in pixel space, expressed in affine_grid's [-1, 1] coordinates.
    theta = torch.stack([
        torch.stack([cos, -sin * (height / width), torch.zeros_like(cos)], dim=1),
        torch.stack([sin * (width / height), cos, torch.zeros_like(cos)], dim=1),
    ], dim=1)
    size = (len(angles), 1, height, width)
    return F.affine_grid(theta, size, align_corners=False)


def _rotate(images, angles, fill):
    """Rotate a float batch; corners filled as ``fill`` says."""
    grid = _rotation_grid(angles.to(images.device, images.dtype),
                          images.shape[-2], images.shape[-1])
    if isinstance(fill, str):
        padding = "reflection" if fill == "reflect" else "border"
        return F.grid_sample(images, grid, mode="bilinear",
                             padding_mode=padding, align_corners=False)
    shifted = F.grid_sample(images - fill, grid, mode="bilinear",
                            padding_mode="zeros", align_corners=False)
    return shifted + fill


def reflect_rotate(images, flip_horizontal, flip_vertical, angles, fill="reflect"):
    """Reflect and rotate each image of a batch; the dtype is kept.

    Parameters
    ----------
    images : torch.Tensor of shape (n, C, H, W), uint8 or float
    flip_horizontal, flip_vertical : torch.Tensor of shape (n,), bool
        Mirror left-right / top-bottom (applied before the rotation).
    angles : torch.Tensor of shape (n,)
        Counter-clockwise rotation in degrees. Images whose angle is a
        multiple of 360 are not resampled at all.
    fill : {"reflect", "border"} or float, default="reflect"
        What fills the corners a rotation uncovers: the mirrored image, the
        repeated edge pixels, or a constant in the image's scale (0-255 for
        uint8, 0-1 for float).

    Returns
    -------
    torch.Tensor like ``images``

    Examples
    --------
    >>> import torch
    >>> from leukosk.augmentation._augment import reflect_rotate
    >>> x = torch.arange(4, dtype=torch.uint8).view(1, 1, 2, 2)
    >>> no = torch.tensor([False]); yes = torch.tensor([True])
    >>> reflect_rotate(x, yes, no, torch.tensor([0.0]))[0, 0].tolist()
    [[1, 0], [3, 2]]
    """
    device = images.device
    out = torch.where(flip_horizontal.to(device).view(-1, 1, 1, 1),
                      images.flip(-1), images)
    out = torch.where(flip_vertical.to(device).view(-1, 1, 1, 1), out.flip(-2), out)
    turn = torch.remainder(angles.to(torch.float64), 360.0) != 0
    if not bool(turn.any()):
        return out
    idx = torch.nonzero(turn).flatten().to(device)
    is_uint8 = out.dtype == torch.uint8
    selected = out.index_select(0, idx)
    selected = selected.float() if is_uint8 else selected
    rotated = _rotate(selected, angles.to(device)[idx], fill)
    if is_uint8:
        rotated = rotated.round_().clamp_(0, 255).to(torch.uint8)
    out = out.clone()
    out.index_copy_(0, idx, rotated.to(out.dtype))
    return out


def dihedral_views(images):
    """The 8 symmetries of the square (4 rotations x optional mirror), exactly.

    No interpolation is involved, so a view of a view is again one of the 8.
    Used for test-time augmentation.

    Parameters
    ----------
    images : torch.Tensor of shape (n, C, S, S)

    Returns
    -------
    list of 8 torch.Tensor, the first one being ``images`` itself

    Examples
    --------
    >>> import torch
    >>> from leukosk.augmentation._augment import dihedral_views
    >>> len(dihedral_views(torch.zeros(2, 3, 4, 4)))
    8
    """
    views = []
    for mirrored in (images, images.flip(-1)):
        for k in range(4):
            views.append(torch.rot90(mirrored, k, dims=(-2, -1)))
    return views


def _check_probability(name, value):
    if not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}={value!r}: a probability must lie in [0, 1].")


def _check_degrees(degrees):
    if isinstance(degrees, numbers.Real):
        degrees = (-abs(degrees), abs(degrees))
    try:
        low, high = (float(d) for d in degrees)
    except (TypeError, ValueError):
        raise ValueError(f"degrees={degrees!r}: pass a (low, high) range in "
                         "degrees, e.g. (0, 360), or one number d for (-d, d).") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"degrees={degrees!r}: need finite low <= high, e.g. (0, 360).")
    return low, high


def _check_fill(fill):
    if isinstance(fill, str):
        if fill not in FILL_MODES:
            raise ValueError(f"fill={fill!r}: use one of {FILL_MODES} or a number.")
    elif not isinstance(fill, numbers.Real) or not math.isfinite(fill):
        raise ValueError(f"fill={fill!r}: use one of {FILL_MODES} or a number.")
    return fill


class BatchAugmentation(TransformerMixin, BaseEstimator):
    """Base of leukosk's augmenters: random, per batch, on the training device.

    An augmenter is a scikit-learn transformer that changes nothing at
    prediction time (``transform`` returns ``X``) and augments only while a
    classifier trains, afresh for every batch of every epoch. Used two ways,
    through one hand-over:

    * ``VGG19LeukocyteClassifier(augment=augmenter)``;
    * ``make_pipeline(augmenter, VGG19LeukocyteClassifier())``: in a pipeline,
      ``fit_transform`` returns :class:`AugmentedImages`, which carries the
      images and the augmenter to the classifier.

    Subclasses implement ``_validate()`` (check the parameters) and
    ``augment_batch(images, generator)`` on an ``(n, C, H, W)`` tensor.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.requires_fit = False
        return tags

    def _validate(self):
        raise NotImplementedError

    def fit(self, X, y=None):
        """Check parameters and input; nothing is learnt. Returns self."""
        self._validate()
        check_images(X)
        return self

    def transform(self, X):
        """Return ``X`` unchanged: prediction is never augmented."""
        return X

    def fit_transform(self, X, y=None, **fit_params):
        """Wrap ``X`` so that the next step augments it afresh every epoch.

        Returns
        -------
        AugmentedImages
            Behaves as an array of one augmented draw for estimators that do
            not know it; :class:`~leukosk.VGG19LeukocyteClassifier`
            augments batch by batch instead.
        """
        self.fit(X, y)
        return AugmentedImages(X, self)

    def make_generator(self):
        """A torch CPU generator seeded from ``random_state`` (or None)."""
        if self.random_state is None:
            return None
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        return torch.Generator().manual_seed(int(seed))

    def augment_batch(self, images, generator=None):
        raise NotImplementedError

    def augment(self, X):
        """One random draw applied to images ``X`` (n, H, W, 3); returns an array.

        For looking at augmentations, or feeding estimators that do not
        augment by themselves. Same ``random_state``, same output.
        """
        X = check_images(X)
        if not isinstance(X, np.ndarray):
            raise TypeError("augment() needs an image array; decode paths first.")
        batch = torch.from_numpy(np.array(X)).permute(0, 3, 1, 2)
        out = self.augment_batch(batch, self.make_generator())
        return out.permute(0, 2, 3, 1).numpy()


class RandomReflectRotate(BatchAugmentation):
    """Random reflection and rotation of cell images, fresh every epoch.

    The augmentation of Jarjees et al. (2022): each training image is
    mirrored (left-right and/or top-bottom, each with its probability) and
    rotated by an angle drawn uniformly from ``degrees``. Blood cells have no
    natural orientation, so this is the most important regulariser.

    It never alters images at prediction time: ``transform`` returns them
    unchanged. In a pipeline, ``fit_transform`` hands the images and this
    augmenter to :class:`~leukosk.VGG19LeukocyteClassifier`, which draws new
    reflections and rotations for every batch of every epoch, on the training
    device (see :class:`AugmentedImages`). Equivalently, pass it as the
    classifier's ``augment`` parameter.

    Parameters
    ----------
    p_horizontal : float, default=0.5
        Probability of a left-right mirror.
    p_vertical : float, default=0.5
        Probability of a top-bottom mirror.
    degrees : (float, float) or float, default=(0, 360)
        Rotation angles are drawn uniformly from this range (counter-clockwise,
        degrees); a number ``d`` means ``(-d, d)``; ``(0, 0)`` disables rotation.
    fill : {"reflect", "border"} or float, default="reflect"
        What fills the corners a rotation uncovers. ``"reflect"`` mirrors the
        image across its edge and ``"border"`` repeats the edge pixels; both
        continue the pale smear background, where a black fill would teach the
        network that dark corners mean something. A number is a constant
        grey level in the image's scale (0-255 for uint8, 0-1 for float).
    random_state : None, int or numpy.random.RandomState, default=None
        Seeds the draws; the same seed gives the same sequence of augmented
        batches. ``None`` draws from the classifier's (seeded) torch RNG.

    See Also
    --------
    AugmentedImages : what ``fit_transform`` returns.
    VGG19LeukocyteClassifier : its ``augment`` and ``tta`` parameters.

    Examples
    --------
    >>> import numpy as np
    >>> from leukosk import RandomReflectRotate
    >>> X = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    >>> aug = RandomReflectRotate(random_state=0)
    >>> aug.augment(X).shape           # one random draw, as an array
    (4, 32, 32, 3)
    >>> aug.transform(X) is X          # prediction: unchanged
    True
    """

    def __init__(self, p_horizontal=0.5, p_vertical=0.5, degrees=(0, 360),
                 fill="reflect", random_state=None):
        self.p_horizontal = p_horizontal
        self.p_vertical = p_vertical
        self.degrees = degrees
        self.fill = fill
        self.random_state = random_state

    def _validate(self):
        _check_probability("p_horizontal", self.p_horizontal)
        _check_probability("p_vertical", self.p_vertical)
        return _check_degrees(self.degrees), _check_fill(self.fill)

    def draw(self, n, generator=None):
        """Draw mirror flags and angles for ``n`` images.

        Returns
        -------
        flip_horizontal, flip_vertical : torch.BoolTensor of shape (n,)
        angles : torch.FloatTensor of shape (n,)
        """
        (low, high), _ = self._validate()
        uniform = torch.rand(3, n, generator=generator)
        flips_h = uniform[0] < self.p_horizontal
        flips_v = uniform[1] < self.p_vertical
        angles = low + (high - low) * uniform[2]
        return flips_h, flips_v, angles

    def augment_batch(self, images, generator=None):
        """Augment a CHW tensor batch on its device (uint8 or float).

        Parameters
        ----------
        images : torch.Tensor of shape (n, C, H, W)
        generator : torch.Generator, optional
            CPU generator for the draws; ``None`` uses torch's global RNG.

        Returns
        -------
        torch.Tensor, same shape, dtype and device
        """
        if images.ndim != 4:
            raise ValueError(f"expected a (n, C, H, W) batch, got shape "
                             f"{tuple(images.shape)}.")
        _, fill = self._validate()
        flips_h, flips_v, angles = self.draw(len(images), generator)
        return reflect_rotate(images, flips_h, flips_v, angles, fill=fill)


class AugmentedImages:
    """Images to be augmented by the estimator that consumes them.

    What :meth:`RandomReflectRotate.fit_transform` returns inside a pipeline.
    :class:`~leukosk.VGG19LeukocyteClassifier` unwraps it, trains on
    ``images`` and applies ``augmenter`` to each batch, freshly every epoch.
    Any other consumer sees an array of one augmented draw (``np.asarray``).

    Parameters
    ----------
    images : array of shape (n, H, W, 3) or sequence of paths
    augmenter : RandomReflectRotate

    Examples
    --------
    >>> import numpy as np
    >>> from leukosk import RandomReflectRotate
    >>> wrapped = RandomReflectRotate(random_state=0).fit_transform(
    ...     np.zeros((3, 8, 8, 3), np.uint8))
    >>> len(wrapped), np.asarray(wrapped).shape
    (3, (3, 8, 8, 3))
    """

    def __init__(self, images, augmenter):
        self.images = images
        self.augmenter = augmenter

    def __len__(self):
        return len(self.images)

    @property
    def shape(self):
        return np.shape(self.images) if isinstance(self.images, np.ndarray) \
            else (len(self.images),)

    def __getitem__(self, index):
        return AugmentedImages(take_images(self.images, index), self.augmenter)

    def __array__(self, dtype=None, copy=None):
        out = self.augmenter.augment(self.images)
        return out if dtype is None else out.astype(dtype)

    def __repr__(self):
        return f"AugmentedImages(<{len(self)} images>, {self.augmenter!r})"


def split_augmented(X, augment):
    """The one hand-over: ``(images, augmenter)`` a classifier trains with.

    ``X`` is either images (augmented by ``augment``, the classifier's
    parameter) or the :class:`AugmentedImages` a pipeline step produced
    (augmented by that step). Both at once would augment twice: refused.
    """
    if not isinstance(X, AugmentedImages):
        return X, augment
    if augment is not None:
        raise ValueError(
            "augmentation is configured twice: by an augmenter step in the "
            "pipeline and by augment=...; keep one of them.")
    return X.images, X.augmenter


class TrainingAugmentation:
    """An augmenter and the random generator its draws come from.

    The classifier keeps one as ``augmentation_`` while it trains (and after,
    so that ``warm_start`` and ``partial_fit`` continue the same random
    sequence). Picklable: the generator travels as its state.

    Parameters
    ----------
    augmenter : BatchAugmentation

    Examples
    --------
    >>> import torch
    >>> from leukosk import RandomReflectRotate
    >>> from leukosk.augmentation._augment import TrainingAugmentation
    >>> augmentation = TrainingAugmentation(RandomReflectRotate(random_state=0))
    >>> augmentation(torch.zeros(2, 3, 8, 8, dtype=torch.uint8)).shape
    torch.Size([2, 3, 8, 8])
    """

    def __init__(self, augmenter):
        augmenter._validate()
        self.augmenter = augmenter
        self.generator = augmenter.make_generator()

    def __call__(self, images):
        """Augment a batch (n, C, H, W) on its device."""
        return self.augmenter.augment_batch(images, self.generator)

    def __getstate__(self):
        return dict(self.__dict__, generator=_generator_states(self.generator))

    def __setstate__(self, state):
        self.__dict__.update(state, generator=_generators(state["generator"]))


def _generator_states(generator):
    """Generators (possibly nested in tuples) as their picklable states."""
    if isinstance(generator, tuple):
        return tuple(_generator_states(g) for g in generator)
    return None if generator is None else ("generator", generator.get_state())


def _generators(states):
    if isinstance(states, tuple) and states and states[0] == "generator":
        generator = torch.Generator()
        generator.set_state(states[1])
        return generator
    if isinstance(states, tuple):
        return tuple(_generators(s) for s in states)
    return None
