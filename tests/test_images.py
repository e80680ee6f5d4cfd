"""Input checking, decoding and resizing (leukosk/utils/_images.py)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from leukosk.utils._images import check_images, decode_image, resize_batch


@pytest.mark.parametrize("shape, hint", [
    ((5, 8, 8), "grayscale"),
    ((5, 8, 8, 1), "np.repeat"),
    ((5, 8, 8, 4), "alpha"),
    ((5, 3, 8, 8), "np.moveaxis"),
    ((5, 192), "reshape"),
    ((8, 8, 8, 8, 3), "(n_images, height, width, 3)"),
])
def test_wrong_shapes_name_the_fix(shape, hint):
    with pytest.raises(ValueError, match="shape") as info:
        check_images(np.zeros(shape, dtype=np.uint8))
    assert hint in str(info.value)


def test_empty_and_nonfinite_and_range():
    with pytest.raises(ValueError, match="empty"):
        check_images(np.zeros((0, 8, 8, 3), np.uint8))
    X = np.zeros((2, 8, 8, 3), np.float32)
    X[1, 2, 2, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        check_images(X)
    X[1, 2, 2, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        check_images(X)
    with pytest.raises(ValueError, match=r"\[0, 1\].*uint8"):
        check_images(np.full((2, 8, 8, 3), 200.0))
    with pytest.raises(ValueError, match="0-255"):
        check_images(np.full((2, 8, 8, 3), 1000, dtype=np.int32))


@pytest.mark.parametrize("X, exc", [
    (np.zeros((2, 8, 8, 3), dtype=bool), TypeError),
    (np.array([["a"] * 3] * 2), TypeError),
    ("cells/basophil.jpg", TypeError),
    ([np.zeros((8, 8, 3)), np.zeros((9, 9, 3))], ValueError),
])
def test_wrong_types(X, exc):
    with pytest.raises(exc):
        check_images(X)


def test_integers_become_uint8_and_floats_float32():
    out = check_images(np.full((1, 4, 4, 3), 7, dtype=np.int64))
    assert out.dtype == np.uint8 and out.max() == 7
    out = check_images(np.full((1, 4, 4, 3), 0.5, dtype=np.float64))
    assert out.dtype == np.float32
    out = check_images(torch.zeros(1, 4, 4, 3, dtype=torch.uint8))
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8


@settings(max_examples=30, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 3), st.integers(1, 9),
                                  st.integers(1, 9), st.just(3))))
def test_valid_uint8_arrays_pass_unchanged(X):
    out = check_images(X)
    assert out.dtype == np.uint8 and np.array_equal(out, X)


@settings(max_examples=30, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 6),
                                    st.integers(1, 6), st.just(3)),
              elements=st.floats(0, 1)))
def test_valid_float_arrays_keep_values(X):
    out = check_images(X)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, X, rtol=1e-6, atol=1e-7)


def test_paths(tmp_path):
    good = tmp_path / "a.png"
    Image.new("RGB", (10, 12), "red").save(good)
    assert check_images([good]) == [str(good)]
    assert check_images(np.array([str(good)])) == [str(good)]
    with pytest.raises(ValueError, match="do not exist"):
        check_images([good, tmp_path / "missing.jpg"])
    fake = tmp_path / "fake.jpg"
    fake.write_bytes(b"this is not a jpeg")
    with pytest.raises(ValueError, match="not readable images.*fake.jpg"):
        check_images([good, fake])
    with pytest.raises(TypeError, match="mixes paths"):
        check_images([str(good), 3])


def test_decode_converts_and_names_bad_files(tmp_path):
    Image.new("RGBA", (6, 5)).save(tmp_path / "rgba.png")
    Image.new("L", (6, 5)).save(tmp_path / "gray.png")
    for name in ("rgba.png", "gray.png"):
        image = decode_image(tmp_path / name)
        assert image.shape == (5, 6, 3) and image.dtype == np.uint8
    Image.new("RGB", (64, 64), "blue").save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.jpg"):
        decode_image(tmp_path / "truncated.jpg")


def test_resize_batch_keeps_dtype_and_constant_images():
    x = torch.full((2, 3, 40, 50), 123, dtype=torch.uint8)
    out = resize_batch(x, 32)
    assert out.shape == (2, 3, 32, 32) and out.dtype == torch.uint8
    assert torch.all(out == 123)
    assert resize_batch(out, 32) is out
