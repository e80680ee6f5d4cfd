"""RandomReflectRotate, the batched kernels and test-time augmentation."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline

from conftest import assert_same_fit_output

from leukosk import AugmentedImages, RandomReflectRotate, VGG19LeukocyteClassifier
from leukosk.augmentation._augment import dihedral_views, reflect_rotate

batches = st.tuples(st.integers(1, 3), st.sampled_from([1, 3]),
                    st.integers(2, 12), st.integers(2, 12))
uint8_batches = batches.flatmap(
    lambda shape: arrays(np.uint8, shape).map(torch.from_numpy))
float_batches = batches.flatmap(
    lambda shape: arrays(np.float32, shape, elements=st.floats(0, 1, width=32))
    .map(torch.from_numpy))
any_batches = st.one_of(uint8_batches, float_batches)


def flags(n, value):
    return torch.full((n,), value, dtype=torch.bool)


@settings(max_examples=40, deadline=None)
@given(any_batches, st.integers(0, 2**31 - 1))
def test_shape_and_dtype_preserved(x, seed):
    out = RandomReflectRotate().augment_batch(x, torch.Generator().manual_seed(seed))
    assert out.shape == x.shape and out.dtype == x.dtype


@settings(max_examples=40, deadline=None)
@given(any_batches, st.sampled_from([0.0, 360.0, -720.0]))
def test_full_turns_without_reflection_are_identity(x, angle):
    n = len(x)
    out = reflect_rotate(x, flags(n, False), flags(n, False), torch.full((n,), angle))
    assert torch.equal(out, x)


@settings(max_examples=40, deadline=None)
@given(any_batches)
def test_each_reflection_is_an_involution(x):
    n, no, yes = len(x), flags(len(x), False), flags(len(x), True)
    zero = torch.zeros(n)
    for h, v in ((yes, no), (no, yes), (yes, yes)):
        once = reflect_rotate(x, h, v, zero)
        assert torch.equal(reflect_rotate(once, h, v, zero), x)


@settings(max_examples=40, deadline=None)
@given(uint8_batches.filter(lambda x: x.shape[-1] == x.shape[-2]))
def test_four_quarter_turns_are_identity(x):
    n, no = len(x), flags(len(x), False)
    out = x
    for _ in range(4):
        out = reflect_rotate(out, no, no, torch.full((n,), 90.0))
    assert torch.equal(out, x)


@settings(max_examples=25, deadline=None)
@given(st.floats(0, 360), st.sampled_from(["reflect", "border", 200.0]))
def test_centred_disc_stays_close(angle, fill):
    size = 33
    yy, xx = np.mgrid[:size, :size] - size // 2
    disc = np.where(xx**2 + yy**2 <= 10**2, 60, 200).astype(np.uint8)
    x = torch.from_numpy(np.stack([disc] * 3))[None]
    out = reflect_rotate(x, flags(1, False), flags(1, False),
                         torch.tensor([angle]), fill=fill)
    difference = (out.float() - x.float()).abs()[0, 0]
    # Inside the inscribed circle the rotated image always has source pixels;
    # the corners are filled (reflected or constant) and may differ.
    radius = np.hypot(xx, yy)
    inside = torch.from_numpy(radius <= size // 2 - 1)
    rim = torch.from_numpy(np.abs(radius - 10) < 2)
    assert difference[inside & ~rim].max() <= 2  # away from the disc's edge: same
    # only the anti-aliased rim (about 6 % of the pixels here) may move much
    assert (difference[inside] > 30).float().mean() < 0.1


def test_corner_fill_is_not_black():
    x = torch.full((1, 3, 20, 20), 230, dtype=torch.uint8)
    for fill in ("reflect", "border"):
        out = reflect_rotate(x, flags(1, False), flags(1, False), torch.tensor([45.0]),
                             fill=fill)
        assert out.min() >= 229
    out = reflect_rotate(x, flags(1, False), flags(1, False), torch.tensor([45.0]),
                         fill=0.0)
    assert out[0, :, 0, 0].max() < 50  # a constant fill does what it says


def test_same_seed_same_batch_and_draws_differ():
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (6, 3, 16, 16),
                                                           dtype=np.uint8))
    aug = RandomReflectRotate(random_state=7)
    first = aug.augment_batch(x, aug.make_generator())
    again = aug.augment_batch(x, aug.make_generator())
    assert torch.equal(first, again)
    generator = aug.make_generator()
    epoch1 = aug.augment_batch(x, generator)
    epoch2 = aug.augment_batch(x, generator)
    assert not torch.equal(epoch1, epoch2)
    np.testing.assert_array_equal(aug.augment(x.permute(0, 2, 3, 1).numpy()),
                                  aug.augment(x.permute(0, 2, 3, 1).numpy()))


@pytest.mark.parametrize("params, match", [
    ({"p_horizontal": 1.5}, "probability"),
    ({"p_vertical": -0.1}, "probability"),
    ({"degrees": (10, 0)}, "low <= high"),
    ({"degrees": "lots"}, "range"),
    ({"degrees": (0, float("nan"))}, "finite"),
    ({"fill": "black"}, "fill"),
])
def test_bad_parameters(params, match):
    aug = RandomReflectRotate(**params)
    with pytest.raises(ValueError, match=match):
        aug.fit(np.zeros((2, 8, 8, 3), np.uint8))


def test_bad_input():
    aug = RandomReflectRotate()
    with pytest.raises(ValueError, match="shape"):
        aug.fit(np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(TypeError):
        aug.fit(np.array([["not", "images"]]))
    with pytest.raises(ValueError, match=r"\(n, C, H, W\)"):
        aug.augment_batch(torch.zeros(3, 8, 8))


def test_transform_is_identity_and_fit_transform_wraps(tiny):
    X, y = tiny
    aug = RandomReflectRotate(random_state=0)
    assert aug.transform(X) is X
    wrapped = aug.fit_transform(X, y)
    assert isinstance(wrapped, AugmentedImages) and wrapped.images is X
    assert wrapped.augmenter is aug and len(wrapped) == len(X)
    drawn = np.asarray(wrapped)
    assert drawn.shape == X.shape and drawn.dtype == X.dtype
    assert not np.array_equal(drawn, X)
    assert np.array_equal(np.asarray(wrapped[:2]), aug.augment(X[:2]))


class _InputRecorder:
    """Forward pre-hook keeping what the network receives in training mode."""

    def __init__(self):
        self.seen = []

    def __call__(self, module, args):
        if module.training:
            self.seen.append(args[0].detach().clone().cpu())


def _record_training_inputs(clf, X, y):
    recorder = _InputRecorder()
    clf.fit(X[::6], y[::6])  # builds module_; hook it, then fit for real
    clf.set_params(warm_start=True)
    clf.module_.register_forward_pre_hook(recorder)
    clf.fit(X, y)
    return recorder.seen


@pytest.mark.parametrize("mode", ["parameter", "pipeline"])
def test_training_sees_fresh_pixels_each_epoch(tiny, fast, mode):
    X, y = tiny
    fast.update(max_epochs=2, batch_size=len(X), iterator_train__shuffle=False,
                module__hidden_units=16)
    aug = RandomReflectRotate(random_state=0)
    if mode == "parameter":
        clf = VGG19LeukocyteClassifier(augment=aug, **fast)
        seen = _record_training_inputs(clf, X, y)
    else:
        clf = VGG19LeukocyteClassifier(**fast)
        recorder = _InputRecorder()
        clf.fit(X[::6], y[::6])
        clf.set_params(warm_start=True)
        clf.module_.register_forward_pre_hook(recorder)
        make_pipeline(aug, clf).fit(X, y)
        seen = recorder.seen
    assert len(seen) == 2
    epoch1, epoch2 = seen
    assert epoch1.shape == (len(X), 3, 36, 36)
    assert not torch.equal(epoch1, epoch2)
    original = torch.from_numpy(X).permute(0, 3, 1, 2)
    assert not torch.equal(epoch1, original)


def test_pipeline_predictions_equal_plain_classifier(tiny, fast):
    X, y = tiny
    fast["module__hidden_units"] = 16
    plain = VGG19LeukocyteClassifier(**fast).fit(X, y)
    pipe = make_pipeline(RandomReflectRotate(), clone(plain))
    pipe.steps[-1] = ("clf", plain)  # the same fitted classifier behind the step
    np.testing.assert_array_equal(pipe.predict(X), plain.predict(X))
    np.testing.assert_array_equal(pipe.predict_proba(X), plain.predict_proba(X))
    assert pipe.score(X, y) == plain.score(X, y)


def test_augmenting_twice_is_an_error(tiny, fast):
    X, y = tiny
    pipe = make_pipeline(RandomReflectRotate(),
                         VGG19LeukocyteClassifier(augment=RandomReflectRotate(), **fast))
    with pytest.raises(ValueError, match="configured twice"):
        pipe.fit(X, y)
    with pytest.raises(TypeError, match="'augment' parameter .*BatchAugmentation"):
        VGG19LeukocyteClassifier(augment="flip", **fast).fit(X, y)


def test_grid_search_over_augmenter_parameters(tiny, fast):
    X, y = tiny
    fast["module__hidden_units"] = 16
    pipe = make_pipeline(RandomReflectRotate(random_state=0),
                         VGG19LeukocyteClassifier(**fast))
    search = GridSearchCV(pipe, {"randomreflectrotate__degrees": [(0, 0), (0, 360)],
                                 "randomreflectrotate__fill": ["reflect", "border"]},
                          cv=StratifiedKFold(2), error_score="raise")
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == 4


def test_seeded_augmented_fits_are_reproducible(tiny, fast):
    X, y = tiny
    fast["module__hidden_units"] = 16
    make = lambda: VGG19LeukocyteClassifier(  # noqa: E731
        augment=RandomReflectRotate(random_state=3), **fast).fit(X, y)
    assert_same_fit_output(make().predict_proba(X), make().predict_proba(X))


def test_dihedral_views_are_the_eight_symmetries():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    views = dihedral_views(x)
    assert torch.equal(views[0], x)
    assert len({tuple(v.flatten().tolist()) for v in views}) == 8
    rotated = {tuple(v.flatten().tolist()) for v in dihedral_views(torch.rot90(x, 1, (2, 3)))}
    assert rotated == {tuple(v.flatten().tolist()) for v in views}


def test_tta_probabilities(tiny, fast):
    X, y = tiny
    X = X[:, :32, :32]  # at image_size: no resize, so rotations commute exactly
    fast["module__hidden_units"] = 16
    clf = VGG19LeukocyteClassifier(tta=True, **fast).fit(X, y)
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    turned = np.ascontiguousarray(np.rot90(X, 1, axes=(1, 2)))
    np.testing.assert_allclose(clf.predict_proba(turned), proba, rtol=1e-4, atol=1e-6)
    plain = clf.set_params(tta=False).predict_proba(X)
    assert not np.allclose(plain, proba)


def test_labels_never_change(tiny, fast, monkeypatch):
    """The batches that reach the loss keep their targets, in order."""
    from skorch import NeuralNet

    X, y = tiny
    fast.update(max_epochs=2, batch_size=len(X), iterator_train__shuffle=False,
                module__hidden_units=16)
    seen = []
    original = NeuralNet.train_step_single

    def recording(self, batch, **kwargs):
        seen.append((batch[0].clone().cpu(), batch[1].clone().cpu()))
        return original(self, batch, **kwargs)

    monkeypatch.setattr(NeuralNet, "train_step_single", recording)
    clf = VGG19LeukocyteClassifier(augment=RandomReflectRotate(random_state=1), **fast)
    clf.fit(X, y)
    expected = np.searchsorted(clf.classes_, y)
    assert len(seen) == 2
    for images, targets in seen:
        np.testing.assert_array_equal(targets.cpu().numpy(), expected)
    assert not torch.equal(seen[0][0], seen[1][0])  # the pixels did change
