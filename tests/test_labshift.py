"""Lab-shift augmenters: invariants as properties (issue 16)."""

import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.utils import estimator_checks as checks

from leukosk import (Augmentations, RandomBlur, RandomColorJitter, RandomJPEG,
                     RandomReflectRotate, RandomScaleCrop, RandomStainJitter,
                     VGG19LeukocyteClassifier)
from leukosk.augmentation._augment import TrainingAugmentation

AUGMENTERS = [RandomScaleCrop(), RandomStainJitter(), RandomColorJitter(), RandomBlur(),
              RandomJPEG(),
              Augmentations([("scale", RandomScaleCrop()), ("stain", RandomStainJitter())])]
#: Parameters under which each augmenter leaves an image (nearly) as it is.
IDENTITY = [RandomScaleCrop(scale=(1, 1), translate=0),
            RandomStainJitter(scale=0, shift=0),
            RandomColorJitter(brightness=0, contrast=0, saturation=0, hue=0),
            RandomBlur(sigma=(0, 0))]
TOLERANCE = [1, 1, 1, 1]  # in grey levels

shapes = st.tuples(st.integers(1, 4), st.just(3), st.integers(8, 20), st.integers(8, 20))
uint8_batches = shapes.flatmap(lambda s: arrays(np.uint8, s).map(torch.from_numpy))
float_batches = shapes.flatmap(lambda s: arrays(
    np.float32, s, elements=st.floats(0, 1, width=32)).map(torch.from_numpy))


@pytest.mark.parametrize("augmenter", AUGMENTERS, ids=lambda a: type(a).__name__)
@settings(max_examples=15, deadline=None)
@given(x=st.one_of(uint8_batches, float_batches), seed=st.integers(0, 2**31 - 1))
def test_shape_dtype_range_and_seed(augmenter, x, seed):
    out = augmenter.augment_batch(x, _generator(augmenter, seed))
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    if x.dtype.is_floating_point:
        assert 0 <= out.min() and out.max() <= 1 and torch.isfinite(out).all()
    again = augmenter.augment_batch(x, _generator(augmenter, seed))
    assert torch.equal(out, again)


def _generator(augmenter, seed):
    if isinstance(augmenter, Augmentations):
        return tuple(torch.Generator().manual_seed(seed + i)
                     for i in range(len(augmenter.steps)))
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("augmenter, tolerance", list(zip(IDENTITY, TOLERANCE)),
                         ids=lambda a: type(a).__name__ if not isinstance(a, int) else "")
@settings(max_examples=15, deadline=None)
@given(x=uint8_batches)
def test_zero_strength_is_identity(augmenter, tolerance, x):
    out = augmenter.augment_batch(x, torch.Generator().manual_seed(0))
    assert (out.int() - x.int()).abs().max() <= tolerance


@pytest.mark.parametrize("augmenter", AUGMENTERS[:5], ids=lambda a: type(a).__name__)
def test_each_image_gets_its_own_draw(augmenter):
    x = torch.from_numpy(np.random.default_rng(0).integers(40, 220, (1, 3, 24, 24),
                                                           dtype=np.uint8)).repeat(6, 1, 1, 1)
    out = augmenter.augment_batch(x, torch.Generator().manual_seed(1))
    assert len({o.numpy().tobytes() for o in out}) > 1


def test_jpeg_loses_more_at_lower_quality():
    yy, xx = np.mgrid[:32, :32]
    smooth = np.stack([128 + 60 * np.sin(xx / 5), 128 + 60 * np.cos(yy / 7),
                       128 + 40 * np.sin((xx + yy) / 9)]).astype(np.uint8)
    x = torch.from_numpy(smooth)[None].repeat(2, 1, 1, 1)
    error = {q: (RandomJPEG(quality=(q, q)).augment_batch(x).int() - x.int()).abs().float()
             .mean() for q in (10, 60, 100)}
    assert error[100] < 1.5 < error[10] and error[100] < error[60] < error[10]


def test_scale_below_one_zooms_in():
    size = 40
    yy, xx = np.mgrid[:size, :size] - size / 2 + 0.5
    disc = np.where(xx**2 + yy**2 <= 8**2, 50, 220).astype(np.uint8)
    x = torch.from_numpy(np.stack([disc] * 3))[None]
    zoomed = RandomScaleCrop(scale=(0.5, 0.5), translate=0).augment_batch(x)
    dark = lambda image: float((image[0, 0] < 135).float().mean())  # noqa: E731
    assert dark(zoomed) == pytest.approx(4 * dark(x), rel=0.15)  # the cell fills more


def test_stain_jitter_keeps_white_white_and_moves_stained_pixels():
    white = torch.full((4, 3, 8, 8), 255, dtype=torch.uint8)
    assert RandomStainJitter(scale=0.5, shift=0).augment_batch(white).min() >= 254
    purple = torch.tensor([120, 60, 160], dtype=torch.uint8).view(1, 3, 1, 1).expand(4, 3, 8, 8)
    out = RandomStainJitter(scale=0.3, shift=0.05).augment_batch(
        purple.contiguous(), torch.Generator().manual_seed(0))
    assert (out.int() - purple.int()).abs().max() > 5


def test_blur_reduces_detail_and_keeps_the_mean():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((2, 3, 32, 32), dtype=np.float32))
    out = RandomBlur(sigma=(2, 2)).augment_batch(x)
    assert out.std() < 0.5 * x.std()
    assert float(out.mean()) == pytest.approx(float(x.mean()), abs=0.01)


@pytest.mark.parametrize("augmenter", AUGMENTERS, ids=lambda a: type(a).__name__)
def test_scikit_learn_api(augmenter):
    for check in (checks.check_get_params_invariance, checks.check_set_params,
                  checks.check_estimator_cloneable, checks.check_no_attributes_set_in_init):
        check(type(augmenter).__name__, clone(augmenter))
    assert augmenter.transform("anything") == "anything"


@pytest.mark.parametrize("params, match", [
    (RandomScaleCrop(scale=(1.2, 0.8)), "low <= high"),
    (RandomScaleCrop(translate=0.9), "translate"),
    (RandomStainJitter(scale=-1), "scale"),
    (RandomColorJitter(hue=0.9), "hue"),
    (RandomBlur(sigma=(0, 20)), "sigma"),
    (RandomJPEG(quality=(0, 100)), "quality"),
    (Augmentations([]), "empty"),
    (Augmentations([("x", "not an augmenter")]), "not a leukosk augmenter"),
])
def test_bad_parameters(params, match):
    with pytest.raises((ValueError, TypeError), match=match):
        params.fit(np.zeros((2, 8, 8, 3), np.uint8))


def test_chain_routes_params_and_pickles_its_generators():
    chain = Augmentations([("rr", RandomReflectRotate()), ("jpeg", RandomJPEG())],
                          random_state=3)
    chain.set_params(jpeg__quality=(90, 95), rr__degrees=(0, 0))
    assert chain.steps[1][1].quality == (90, 95)
    state = TrainingAugmentation(chain)
    x = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    state(x)
    copy = pickle.loads(pickle.dumps(state))
    assert torch.equal(copy(x + 50), state(x + 50))  # same random sequence continues


def test_lab_shift_training_saves_loads_and_works_in_a_pipeline(tiny, fast, tmp_path):
    X, y = tiny
    chain = Augmentations([("rr", RandomReflectRotate()), ("scale", RandomScaleCrop()),
                           ("colour", RandomColorJitter()), ("stain", RandomStainJitter()),
                           ("blur", RandomBlur()), ("jpeg", RandomJPEG())], random_state=0)
    clf = VGG19LeukocyteClassifier(augment=chain, **fast).fit(X, y)
    loaded = VGG19LeukocyteClassifier.load(clf.save(tmp_path / "m.safetensors"))
    assert loaded.augment.get_params(deep=True).keys() == chain.get_params(deep=True).keys()
    assert loaded.augment.steps[1][1].scale == (0.6, 1.2)
    pipe = make_pipeline(clone(chain), VGG19LeukocyteClassifier(**fast)).fit(X, y)
    np.testing.assert_array_equal(pipe.predict(X).shape, (len(X),))


def test_chain_accepts_a_random_state_instance():
    """Issue 21: the docstring allows a RandomState; it raised TypeError."""
    X = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)

    def chain(random_state):
        return Augmentations([("stain", RandomStainJitter()), ("blur", RandomBlur())],
                             random_state=random_state)

    first = chain(np.random.RandomState(0)).augment(X)
    np.testing.assert_array_equal(first, chain(np.random.RandomState(0)).augment(X))
    np.testing.assert_array_equal(first, chain(0).augment(X))  # as sklearn seeds
    augmenter = chain(np.random.RandomState(0))
    assert isinstance(clone(augmenter).get_params()["random_state"], np.random.RandomState)
    assert augmenter.get_params()["stain__scale"] == 0.2
