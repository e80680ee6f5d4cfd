"""Shared fixtures: tiny synthetic images and fast classifier settings."""

import numpy as np
import pytest

#: Settings that make a VGG-19 fit take seconds on a CPU.
FAST = dict(weights=None, image_size=32, max_epochs=1, batch_size=8,
            verbose=0, random_state=0, device="cpu")


def make_images(n_per_class=6, classes=("basophil", "eosinophil", "platelet"),
                size=36, seed=0):
    """Images whose mean colour depends on the class, plus noise."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for k, label in enumerate(classes):
        base = np.zeros(3)
        base[k % 3] = 180
        noise = rng.normal(0, 30, size=(n_per_class, size, size, 3))
        X.append(np.clip(40 + base + noise, 0, 255).astype(np.uint8))
        y += [label] * n_per_class
    return np.concatenate(X), np.array(y)


@pytest.fixture
def tiny():
    """(X, y): 18 uint8 images of 36x36 px, three string classes."""
    return make_images()


@pytest.fixture
def fast():
    """Keyword arguments for a fast classifier (copy per test)."""
    return dict(FAST)
