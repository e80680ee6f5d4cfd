"""The cell-centred view: the square found around a stained nucleus."""

import numpy as np
import pytest
import torch
from conftest import FAST, make_images
from hypothesis import given, settings
from hypothesis import strategies as st

from leukosk import VGG19LeukocyteClassifier
from leukosk.nn._cellview import crop_boxes, locate_cells
from leukosk.nn._vgg import LeukocyteVGG, decode_size

SIZE = 120


def smear(centre=(60, 60), radius=0, colour=(90, 45, 140), background=(235, 205, 190),
          size=SIZE):
    """A pale field with a dark disk (the nucleus) of ``radius`` px at ``centre``."""
    image = np.empty((size, size, 3), np.uint8)
    image[:] = background
    yy, xx = np.mgrid[:size, :size]
    image[(yy - centre[1]) ** 2 + (xx - centre[0]) ** 2 <= radius ** 2] = colour
    return image


def boxes_of(*images, **params):
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
    boxes, found = locate_cells(batch, **params)
    return boxes.numpy() * np.array([SIZE, SIZE, SIZE, SIZE]), found.numpy()


@settings(max_examples=40, deadline=None)
@given(cx=st.integers(25, 95), cy=st.integers(25, 95), radius=st.integers(6, 16))
def test_the_square_contains_the_nucleus_at_the_scale_it_sets(cx, cy, radius):
    (box,), (found,) = boxes_of(smear((cx, cy), radius))
    assert found
    x0, y0, x1, y1 = box
    side = x1 - x0
    assert side == pytest.approx(y1 - y0, abs=1e-3)
    # the disk lies inside the square ...
    assert x0 <= cx - radius + 1 and x1 >= cx + radius - 1
    assert y0 <= cy - radius + 1 and y1 >= cy + radius - 1
    # ... which is 1.8 nucleus diameters wide (within the sampling of the map),
    # bounded below by 35 % of the image
    expected = max(1.8 * 2 * radius, 0.35 * SIZE)
    assert side == pytest.approx(expected, rel=0.2)


def test_a_larger_nucleus_gets_a_larger_square_and_the_scale_parameter_counts():
    small, large = boxes_of(smear(radius=12), smear(radius=20))[0]
    assert large[2] - large[0] > 1.4 * (small[2] - small[0])
    (wide,), _ = boxes_of(smear(radius=12), scale=2.5)
    assert wide[2] - wide[0] > small[2] - small[0]


def test_no_nucleus_falls_back_to_the_centre():
    (box,), (found,) = boxes_of(smear(radius=0), fallback=0.6)
    assert not found
    np.testing.assert_allclose(box, [24, 24, 96, 96], atol=1e-3)


def test_a_cell_filling_the_frame_is_shown_smaller_with_the_edges_continued():
    (box,), (found,) = boxes_of(smear(radius=45))
    assert found and box[2] - box[0] > SIZE  # beyond the image: zoom out
    image = torch.from_numpy(smear(radius=45)).permute(2, 0, 1)[None].float()
    crop = crop_boxes(image, torch.from_numpy(box / SIZE)[None].float(), 32)
    corner = crop[0, :, 0, 0].numpy()
    np.testing.assert_allclose(corner, [235, 205, 190], atol=1)  # the background


def test_colour_and_background_of_another_lab_do_not_matter():
    purple_on_pink = smear((40, 70), 12)
    brown_on_yellow = smear((40, 70), 12, colour=(100, 40, 80),
                            background=(255, 250, 160))
    (a, b), found = boxes_of(purple_on_pink, brown_on_yellow)
    assert found.all()
    np.testing.assert_allclose(a, b, atol=3)


def test_crop_boxes_is_exact_on_aligned_boxes_and_keeps_dtype_and_shape():
    x = torch.arange(64.0).view(1, 1, 8, 8).repeat(2, 3, 1, 1)
    out = crop_boxes(x, torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]]), 4)
    assert out.shape == (2, 3, 4, 4) and out.dtype == x.dtype
    np.testing.assert_allclose(out[0, 0].numpy(), x[0, 0, :4, :4].numpy())
    np.testing.assert_allclose(out[1, 0].numpy(), x[0, 0, 4:, 4:].numpy())


def test_the_network_sees_the_cell_view_and_uint8_matches_float():
    net = LeukocyteVGG(n_classes=2, batch_norm=True, image_size=32, width=0.25,
                       hidden_units=16, view="cell").eval()
    image = torch.from_numpy(smear((30, 80), 12)).permute(2, 0, 1)[None]
    as_uint8 = net.preprocess(image)
    as_float = net.preprocess(image.float() / 255)
    torch.testing.assert_close(as_uint8, as_float, atol=1e-4, rtol=1e-4)
    # the dark nucleus is in the middle of the view, not at its edge
    darkness = -as_uint8[0, 1]
    centre = darkness[12:20, 12:20].mean()
    assert centre > darkness[:4].mean() and centre > darkness[-4:].mean()
    with pytest.raises(ValueError, match="module__view='middle'"):
        LeukocyteVGG(n_classes=2, image_size=32, view="middle")


def test_decode_size_leaves_room_for_the_cell_view():
    assert decode_size(64, {"view": "cell", "crop": 0.6}) == 128
    assert decode_size(64, {"crop": 0.6}) == 107


def test_a_cell_view_model_saves_its_view_and_predicts_the_same_after_loading(tmp_path):
    X, y = make_images(size=48)
    clf = VGG19LeukocyteClassifier(**dict(FAST, batch_norm=True, module__view="cell",
                                          module__cell_scale=2.0)).fit(X, y)
    assert clf.decode_size_ == 64
    path = clf.save(tmp_path / "cell.safetensors")
    loaded = VGG19LeukocyteClassifier.load(path)
    described = loaded._plain_module().preprocess.describe()
    assert (described["view"], described["cell_scale"]) == ("cell", 2.0)
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-5)
