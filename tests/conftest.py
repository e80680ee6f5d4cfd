"""Shared fixtures: tiny synthetic images and fast classifier settings."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

def pytest_configure(config):
    """Under pytest-xdist, one torch thread per worker: the workers already
    share the cores, and torch's own threads on top would oversubscribe them."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


#: Device the classifier tests train on: the CPU, or e.g. LEUKOSK_TEST_DEVICE=cuda
#: to run the same tests on a GPU.
TEST_DEVICE = os.environ.get("LEUKOSK_TEST_DEVICE", "cpu")

def amp_warning():
    """What ``amp=True`` on this machine's CPU says: a warning where bfloat16 is
    emulated (no AVX512-BF16 or AMX), nothing where it is native or on a GPU."""
    import contextlib

    from leukosk.utils._precision import cpu_has_bf16

    if TEST_DEVICE != "cpu" or cpu_has_bf16():
        return contextlib.nullcontext()
    return pytest.warns(UserWarning, match="emulates bfloat16")


def assert_same_fit_output(actual, expected):
    """Outputs of two identically seeded fits: equal on the CPU, and close on a
    GPU, where cuDNN's kernels are not bit-for-bit deterministic."""
    if TEST_DEVICE == "cpu":
        np.testing.assert_array_equal(actual, expected)
    else:
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)


#: Settings that make a VGG-19 fit take seconds on a CPU.  Narrow hidden
#: layers keep each model (and each checkpoint a test writes) near 80 MB
#: instead of 550 MB; tests of the default head build their own.
FAST = dict(weights=None, image_size=32, max_epochs=1, batch_size=8, module__width=0.25,
            module__hidden_units=64, verbose=0, random_state=0,
            device=TEST_DEVICE)


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


@pytest.fixture(scope="module")
def model_and_images(tmp_path_factory):
    """A tiny model folder (``model.safetensors``, as ``leukosk train`` writes
    it) and a folder of six images: what the command line's tests load."""
    from PIL import Image

    from leukosk import VGG19LeukocyteClassifier

    root = tmp_path_factory.mktemp("model_and_images")
    X, y = make_images(n_per_class=2)
    (root / "model").mkdir()
    VGG19LeukocyteClassifier(**FAST).fit(X, y).save(root / "model" / "model.safetensors")
    (root / "cells").mkdir()
    for i, image in enumerate(X):
        Image.fromarray(image).save(root / "cells" / f"cell{i}.png")
    return root / "model", root / "cells"


#: The development part of PBC beside the repository (absent outside it).
SHARED_PBC = Path(__file__).resolve().parents[2] / "shared" / "data" / "PBC_dataset_normal_DIB"


@pytest.fixture
def pbc_folder(tmp_path):
    """A small PBC-layout folder: 3 real images in each of 3 classes."""
    from leukosk.datasets import sample_folder

    root = tmp_path / "PBC_dataset_normal_DIB"
    for name in ("basophil", "eosinophil", "platelet"):
        (root / name).mkdir(parents=True)
        for src in sorted((sample_folder() / name).glob("*.jpg"))[:3]:
            shutil.copyfile(src, root / name / src.name)
    return root
