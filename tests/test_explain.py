"""Grad-CAM finds the evidence where it is (issue 15)."""

import numpy as np
import pytest
import torch

from leukosk import VGG19LeukocyteClassifier
from leukosk.callbacks import OneCycle
from leukosk.explain import grad_cam

QUADRANTS = ("top_left", "top_right", "bottom_left", "bottom_right")
COLOURS = {"red": (220, 40, 40), "green": (40, 200, 40), "blue": (40, 60, 220),
           "yellow": (230, 220, 40)}


def blobs(n_per_class, size=64, seed=0, radius=5):
    """Grey noise with one coloured blob in a random quadrant.

    The class is the blob's colour; where it sits (``quadrant``) is known to
    the test and irrelevant to the class, so a map that shows the evidence
    must find it there.
    """
    rng = np.random.default_rng(seed)
    X, y, where = [], [], []
    half = size // 2
    yy, xx = np.mgrid[:size, :size]
    for name, colour in COLOURS.items():
        for _ in range(n_per_class):
            k = rng.integers(4)
            image = rng.normal(128, 20, (size, size, 3))
            cy = rng.integers(radius + 1, half - radius - 1) + half * (k // 2)
            cx = rng.integers(radius + 1, half - radius - 1) + half * (k % 2)
            image[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2] = colour
            X.append(np.clip(image, 0, 255).astype(np.uint8))
            y.append(name)
            where.append(k)
    return np.stack(X), np.array(y), np.array(where)


def _blob_classifier(max_epochs):
    return VGG19LeukocyteClassifier(
        weights=None, batch_norm=True, image_size=64, max_epochs=max_epochs, batch_size=16,
        lr=2e-3, head_lr_multiplier=1.0, optimizer=torch.optim.AdamW,
        optimizer__weight_decay=0.0, module__width=0.25, module__hidden_units=32,
        module__dropout=0.0, module__pool_size=1, verbose=0, random_state=0,
        device="cpu", callbacks=[("one_cycle", OneCycle(max_lr=2e-3))])


@pytest.fixture(scope="module")
def fitted():
    """Fitted briefly: enough for the maps' shapes, labels and crop handling."""
    X, y, _ = blobs(4)
    return _blob_classifier(max_epochs=1).fit(X, y)


@pytest.fixture(scope="module")
def trained():
    """Trained until it has learnt the task (a minute on 2 cores: slow tests)."""
    X, y, _ = blobs(30)
    return _blob_classifier(max_epochs=30).fit(X, y)


def _quadrant_mass(cam):
    h, w = cam.shape
    return np.array([cam[:h // 2, :w // 2].sum(), cam[:h // 2, w // 2:].sum(),
                     cam[h // 2:, :w // 2].sum(), cam[h // 2:, w // 2:].sum()])


@pytest.mark.slow
def test_grad_cam_peaks_in_the_quadrant_of_the_evidence(trained):
    X, y, where = blobs(8, seed=1)
    assert trained.score(X, y) > 0.9  # the model learnt the task
    maps, labels = grad_cam(trained, X, target=y)
    assert maps.shape == (len(X), 64, 64) and labels.tolist() == y.tolist()
    peaks = np.array([_quadrant_mass(m).argmax() for m in maps])
    # Most maps put their mass in the blob's quadrant (chance: a quarter). The
    # last block's map is 4x4 at 64 px and sees the whole image, so not all:
    # 66 % when this test was written.
    assert np.mean(peaks == where) > 0.5


def test_maps_follow_the_prediction_and_undo_the_crop(fitted, tmp_path):
    from PIL import Image

    X, y, _ = blobs(2, seed=2)
    maps, labels = grad_cam(fitted, X)  # the predicted class by default
    np.testing.assert_array_equal(labels, fitted.predict(X))
    paths = []
    for i, image in enumerate(X[:3]):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(np.pad(image, ((0, 8), (0, 0), (0, 0)))).save(paths[-1])
    from_files, _ = grad_cam(fitted, paths)
    assert from_files.shape == (3, 72, 64)
    with pytest.raises(ValueError, match=r"target contain\(s\) label\(s\) "
                                         r"\['neutrophil'\] that the classifier does not"):
        grad_cam(fitted, X[:1], target="neutrophil")


def test_grad_cam_with_amp_and_a_crop(tmp_path):
    X, y, _ = blobs(4)
    from conftest import amp_warning

    with amp_warning():
        clf = VGG19LeukocyteClassifier(
            weights=None, batch_norm=True, image_size=32, max_epochs=1, verbose=0,
            module__width=0.25, module__hidden_units=16, module__crop=0.5, amp=True,
            random_state=0, device="cpu").fit(X, y)
    maps, _ = grad_cam(clf, X[:4])
    assert maps.dtype == np.float32 and np.isfinite(maps).all()
    assert maps[:, :12].max() == 0 and maps[:, -12:].max() == 0  # outside the crop


def test_grad_cam_of_a_model_with_frozen_features():
    """Issue 21: with ``freeze_features=True`` (a ``train="head"`` few-shot
    model) nothing before the last block requires a gradient on uint8 input;
    Grad-CAM must still differentiate the score by the last block's output."""
    from conftest import FAST, make_images

    X, y = make_images(n_per_class=2)
    clf = VGG19LeukocyteClassifier(**dict(FAST, freeze_features=True)).fit(X, y)
    maps, labels = grad_cam(clf, X)
    assert maps.shape == (len(X), 36, 36) and np.isfinite(maps).all()
    assert maps.max() > 0 and set(labels) <= set(clf.classes_)
    maps, _ = grad_cam(clf, X[:2] / np.float32(255))  # float input too
    assert np.isfinite(maps).all()
