"""Find the white cells in a microscope field: boxes and a score per cell.

A field photographed through an ordinary microscope holds zero, one or a few
white cells among many red cells, each white cell 30-250 px across depending
on the magnification. The finder uses the cue of the cell-centred view
(:mod:`leukosk.nn._cellview`): a white cell's nucleus is the most strongly
stained region of a Romanowsky-stained smear, far darker in green than the
background and purple (its red and blue well above its green), whatever the
lab's background colour. Then, on a copy of the field at most ``work_side``
pixels wide:

0. **the background's light**, at each pixel: a smooth surface fitted to
   the brightest pixels of the field's tiles (tiles that cells cover left
   out), so that a field lit unevenly, dimmer towards its rim, is read
   against its own light; pixels dark in every channel (outside an
   eyepiece's round view) are unlit, neither background nor red cells;
1. **the field's scale**, from its red cells: twice the area-weighted
   median radius of the largest disks inscribed in the stained but not
   nuclear blobs (a red cell is about 7.5 micrometres at any magnification;
   touching red cells keep their own radius); a field without red cells (a
   tight crop) takes its scale from its side;
2. **nuclei**: purple pixels much darker in green than the background, near
   (a quarter of a red cell) a core of pixels darker still, which a red
   cell, however dark its stain, does not have; closed over gaps smaller
   than a fifth of a red cell, so that a neutrophil's lobes make one
   nucleus; parts of one nucleus closer than a quarter of a red cell are
   merged;
3. **rejections**: nuclei smaller than half a red cell's diameter, or with a
   core under 0.6 of it, or paler than a nucleus (platelets and their
   clumps, stain debris), grey or black marks (scale bars, text: not
   purple), and nuclei cut by the border with less than about half of them
   inside (a disk cut by an edge shows its larger part when the cut is at
   most twice the part's depth);
4. **the box**: the nucleus's extent times ``scale`` (at least a red cell and a
   half), in the field's own pixels; boxes overlapping by 30 % of the
   smaller (lobes lying apart) are merged.

Deterministic, no downloaded weights; numpy and scipy only.
"""

import re

import numpy as np
from scipy import ndimage
from sklearn.utils import Bunch

from .utils._images import check_images, decode_image, resize_batch

__all__ = ["find_white_cells", "crop_cells", "field_cells", "classify_fields", "cell_name",
           "parse_cell_name", "read_cells"]


def _as_field(image):
    """A field as ``uint8`` RGB: a file decoded, an array checked as every
    image array is (:func:`~leukosk.utils._images.check_images`: dtype,
    range, NaN) and float (0-1) scaled to 0-255."""
    field = image if isinstance(image, np.ndarray) else decode_image(image)
    if field.ndim != 3 or field.shape[2] != 3:
        raise ValueError(f"a field is an RGB image of shape (H, W, 3); got shape "
                         f"{field.shape}.")
    field = check_images(field[None])[0]
    if field.dtype != np.uint8:
        field = np.round(field * 255).astype(np.uint8)
    return field


def _check_settings(*, threshold, core, core_size, reach, scale, min_nucleus,
                    min_darkness, merge, work_side):
    """A clear error for a finder setting out of its range."""
    ranges = {"threshold": (threshold, 0, 1), "core": (core, 0, threshold),
              "min_darkness": (min_darkness, 0, 1), "merge": (merge, 0, 1)}
    for name, (value, low, high) in ranges.items():
        if value is not None and not low < value <= high:
            raise ValueError(f"find_white_cells: {name}={value!r} must lie in "
                             f"({low}, {high}]" + (" (at most threshold)" if name == "core"
                                                    else "") + ".")
    for name, value in {"core_size": core_size, "reach": reach, "scale": scale,
                        "min_nucleus": min_nucleus}.items():
        if not (np.isfinite(value) and value >= 0 and (value > 0 or name != "scale")):
            raise ValueError(f"find_white_cells: {name}={value!r} must be a "
                             f"{'positive' if name == 'scale' else 'non-negative'} number.")
    if int(work_side) != work_side or work_side < 16:
        raise ValueError(f"find_white_cells: work_side={work_side!r} must be a whole "
                         "number of pixels, at least 16.")


def _work_copy(field, work_side):
    """The field as floats in [0, 1], shrunk by an integer factor so that its
    longest side is at most ``work_side`` (block means, PIL's ``reduce``:
    fast, no aliasing)."""
    from PIL import Image

    step = max(1, int(np.ceil(max(field.shape[:2]) / work_side)))
    height, width = (n // step * step for n in field.shape[:2])
    small = np.asarray(Image.fromarray(np.ascontiguousarray(field[:height, :width]))
                       .reduce(step)) if step > 1 else field
    return small.astype(np.float32) / 255.0, step


def _background_map(green, lit, blocks=8):
    """The background's green at each pixel: a smooth surface (quadratic in x
    and y, as a microscope's uneven light is) fitted to the brightest
    twentieth of each of ``blocks`` x ``blocks`` tiles (those at least a fifth
    lit), tiles far below it left out and the fit repeated: tiles that a white
    cell or crowded red cells cover are not background. So a field lit
    unevenly (a phone's, dimmer towards its rim) is read against its own light
    everywhere."""
    height, width = green.shape
    th, tw = height // blocks, width // blocks
    if th < 2 or tw < 2:
        return np.full_like(green, _global_background(green, lit))
    tiles = green[:th * blocks, :tw * blocks].reshape(blocks, th, blocks, tw)
    tiles = tiles.transpose(0, 2, 1, 3).reshape(blocks * blocks, th * tw)
    lit_share = lit[:th * blocks, :tw * blocks].reshape(blocks, th, blocks, tw) \
        .mean(axis=(1, 3)).ravel()
    levels = np.quantile(tiles, 0.95, axis=1)  # the top twentieth of a lit fifth is lit
    centre = 2 * (np.arange(blocks) + 0.5) / blocks - 1
    lit_tiles = lit_share >= 0.2
    if lit_tiles.sum() < 6:
        return np.full_like(green, _global_background(green, lit))
    terms = np.stack(np.broadcast_arrays(*_quadratic_terms(centre[:, None],
                                                             centre[None, :])),
                     axis=-1).reshape(blocks * blocks, -1)
    keep = lit_tiles.copy()
    for _ in range(3):
        coef = np.linalg.lstsq(terms[keep], levels[keep], rcond=None)[0]
        fitted = levels >= terms @ coef - 0.05 * np.median(levels[keep])
        if (fitted & keep).sum() < 6:
            break
        keep &= fitted
    y = (2 * (np.arange(height) + 0.5) / height - 1)[:, None]
    x = (2 * (np.arange(width) + 0.5) / width - 1)[None, :]
    surface = sum(c * term for c, term in zip(coef, _quadratic_terms(y, x)))
    top = float(levels[lit_tiles].max())
    return np.clip(surface, 0.25 * top, top).astype(green.dtype)


def _global_background(green, lit):
    return max(float(np.quantile(green[lit], 0.9)), 1e-3) if lit.any() else 1.0


def _quadratic_terms(y, x):
    """The terms of a quadratic in ``y`` and ``x`` (broadcast together): the
    tiles' design matrix and the surface over the field use the same ones."""
    return [np.ones_like(y * x), y, x, y * y, x * y, x * x]


def _red_cell_diameter(stained, nuclei, side):
    """The red cells' diameter: twice the area-weighted median radius of the
    largest disks inscribed in the stained blobs that hold no nucleus (the
    peaks of their distance map), or a sixth of the field's side without
    any. Touching red cells keep their own radius (the map dips between
    them), and weighting by area lets specks count for little."""
    blobs = ndimage.binary_fill_holes(stained)  # a red cell's pale centre too
    distance = ndimage.distance_transform_edt(
        blobs & ~ndimage.binary_dilation(nuclei, iterations=2))
    radii = np.sort(distance[(distance == ndimage.maximum_filter(distance, size=3))
                             & (distance >= 1.5)])
    if len(radii) < 3:
        return side / 6
    weight = np.cumsum(radii ** 2)
    return float(2 * radii[np.searchsorted(weight, weight[-1] / 2)])


def _mostly_inside(ys, xs, shape):
    """Whether at least about half of a nucleus cut by the border is inside.

    A disk cut by a straight edge shows its larger part exactly when the cut
    (the chord along the edge) is at most twice as long as the part's depth
    from the edge; a nucleus touching no edge is inside."""
    height, width = shape
    for on_edge, along, depth in ((ys == 0, xs, ys), (ys == height - 1, xs, height - 1 - ys),
                                  (xs == 0, ys, xs), (xs == width - 1, ys, width - 1 - xs)):
        if on_edge.any():
            chord = along[on_edge].max() - along[on_edge].min() + 1
            if chord > 2.2 * (depth.max() + 1):
                return False
    return True


def _merge_overlapping(boxes, scores, share):
    """Boxes (best first) that overlap a better one by at least ``share`` of
    the smaller box's area are merged into it (their union): the lobes of one
    nucleus that lie apart."""
    kept, kept_scores = [], []
    for box, score in zip(boxes, scores):
        for i, other in enumerate(kept):
            w = min(box[2], other[2]) - max(box[0], other[0])
            h = min(box[3], other[3]) - max(box[1], other[1])
            smaller = min(np.prod(box[2:] - box[:2]), np.prod(other[2:] - other[:2]))
            if w > 0 and h > 0 and w * h >= share * smaller:
                kept[i] = np.concatenate([np.minimum(box[:2], other[:2]),
                                          np.maximum(box[2:], other[2:])])
                break
        else:
            kept.append(box)
            kept_scores.append(score)
    return np.asarray(kept, dtype=float).reshape(-1, 4), np.asarray(kept_scores, dtype=float)


def _near(mask, radius):
    """The pixels within ``radius`` (rounded, at least 1) of ``mask``: a
    dilation by a disk, from the distance map, whose cost does not grow with
    the radius."""
    if not mask.any():
        return mask
    return ndimage.distance_transform_edt(~mask) <= max(1, int(round(radius)))


def _by_disk(mask, radius, closing):
    """Closing (or opening) by a disk of ``radius`` (rounded, at least 1), the
    field's edge pixels extended past it, so that a nucleus cut by the border
    keeps its pixels on the border (which tell how much of it is inside):
    scipy's with the disk as structure for a small one (fast), from distance
    maps for a large one (whose cost does not grow with the radius)."""
    r = max(1, int(round(radius)))
    wide = np.pad(mask, r + 1, mode="edge")
    if r <= 6:
        y, x = np.ogrid[-r:r + 1, -r:r + 1]
        operation = ndimage.binary_closing if closing else ndimage.binary_opening
        out = operation(wide, structure=x * x + y * y <= r * r)
    elif closing:
        out = ~_near(~_near(wide, r), r)
    else:
        out = _near(~_near(~wide, r), r)
    return out[r + 1:-(r + 1), r + 1:-(r + 1)]


def find_white_cells(image, *, threshold=0.55, core=0.3, core_size=0.6, reach=0.25,
                     scale=1.8, min_nucleus=0.5, min_darkness=0.45, merge=0.3,
                     work_side=320):
    """Boxes around the white cells of a microscope field, and a score each.

    Parameters
    ----------
    image : path-like or ndarray of shape (H, W, 3)
        A field (an image file, or ``uint8`` RGB); any size, any number of
        white cells (none included).
    threshold : float, default=0.55
        A pixel may be nucleus where its green is below ``threshold`` times
        the background's (the cell view's cue).
    core : float, default=0.3
        A nucleus holds a core of pixels darker still: green below ``core``
        times the background's (a red cell, however dark its stain, has
        none; a nucleus's paler parts join it within ``reach``).
    core_size : float, default=0.6
        Least size of a nucleus's core, as its equivalent diameter in red-cell
        diameters (platelets' and debris' cores are smaller).
    reach : float, default=0.25
        Nucleus pixels lie within ``reach`` red-cell diameters of a core
        pixel: a dark red cell touching a white cell does not join its nucleus.
    scale : float, default=1.8
        A box's side is ``scale`` times its nucleus's extent (at least one
        and a half red-cell diameters).
    min_nucleus : float, default=0.5
        Smallest nucleus kept (its equivalent diameter), as a fraction of a
        red cell's diameter (platelets and debris are smaller).
    min_darkness : float, default=0.45
        Least mean darkness of a nucleus's green (1 - green / background):
        platelets and their clumps are paler than nuclei.
    merge : float or None, default=0.3
        A box overlapping a better one by at least this share of the smaller
        box is merged into it (their union): the lobes of one nucleus lying
        apart make one cell. None merges none.
    work_side : int, default=320
        The longest side the finder works at (the boxes are in the field's
        own pixels).

    Returns
    -------
    Bunch
        ``boxes`` (ndarray of shape (n, 4), ``x0, y0, x1, y1`` in pixels of the
        field, clipped to it), ``scores`` (n,) in (0, 1]: how dark and how
        large the nucleus is, the best first), ``red_cell`` (the red cells'
        diameter in pixels, the field's scale), ``shape`` (H, W).

    Examples
    --------
    A pink field with one purple nucleus of 24 px among red cells:

    >>> import numpy as np
    >>> from leukosk.fields import find_white_cells
    >>> field = np.full((120, 160, 3), (235, 225, 215), np.uint8)
    >>> yy, xx = np.mgrid[:120, :160]
    >>> for cy, cx in [(20, 20), (20, 130), (100, 30), (100, 140), (60, 20)]:
    ...     field[(yy - cy) ** 2 + (xx - cx) ** 2 < 81] = (215, 150, 170)  # red cells
    >>> field[(yy - 60) ** 2 + (xx - 80) ** 2 < 144] = (120, 60, 150)   # a nucleus
    >>> found = find_white_cells(field)
    >>> found.boxes.round().tolist(), len(found.scores)
    ([[60.0, 40.0, 101.0, 81.0]], 1)
    """
    _check_settings(threshold=threshold, core=core, core_size=core_size, reach=reach,
                    scale=scale, min_nucleus=min_nucleus, min_darkness=min_darkness,
                    merge=merge, work_side=work_side)
    field = _as_field(image)
    rgb, step = _work_copy(field, work_side)
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    # unlit: dark in every channel (outside an eyepiece's round field of view)
    brightness = rgb.max(axis=2)
    lit = brightness >= 0.25 * float(np.quantile(brightness, 0.99))
    background = _background_map(green, lit)
    dark = green < threshold * background
    purple = (blue - green > 0.08) & (red - green > 0.0)
    nuclei = dark & purple
    deep = green < core * background  # a nucleus's core is this dark
    cores = nuclei & deep
    stained = (green < 0.9 * background) & lit
    side = min(green.shape)
    red_cell = _red_cell_diameter(stained, nuclei, side)
    # a nucleus's paler parts lie near its core; dark red cells touching it do not join it
    nuclei &= _near(cores, reach * red_cell)
    nuclei = _by_disk(nuclei, red_cell / 5, closing=True)
    nuclei = _by_disk(nuclei, red_cell / 12, closing=False)
    # parts of one nucleus (lobes) lie closer than a quarter of a red cell
    grouped, _ = ndimage.label(_near(nuclei, red_cell / 8))
    labels = np.where(nuclei, grouped, 0)
    boxes, scores = [], []
    for index, where in enumerate(ndimage.find_objects(labels), start=1):
        if where is None:
            continue
        mask = labels[where] == index
        area = int(mask.sum())
        diameter = 2 * np.sqrt(area / np.pi)
        ys, xs = np.nonzero(mask)
        ys, xs = ys + where[0].start, xs + where[1].start
        darkness = 1 - float((green[ys, xs] / background[ys, xs]).mean())
        n_core = int(deep[ys, xs].sum())
        core_ok = 2 * np.sqrt(n_core / np.pi) >= core_size * red_cell
        if not core_ok or diameter < min_nucleus * red_cell or darkness < min_darkness \
                or not _mostly_inside(ys, xs, green.shape):
            continue
        extent = max(ys.max() - ys.min(), xs.max() - xs.min()) + 1
        half = max(scale * extent, 1.5 * red_cell) / 2
        cy, cx = (ys.min() + ys.max() + 1) / 2, (xs.min() + xs.max() + 1) / 2
        box = np.array([cx - half, cy - half, cx + half, cy + half]) * step
        boxes.append(np.clip(box, 0, [field.shape[1], field.shape[0]] * 2))
        scores.append(float(np.clip(darkness * min(1.0, diameter / red_cell), 1e-6, 1)))
    order = np.argsort(scores)[::-1]
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)[order]
    scores = np.asarray(scores, dtype=float)[order]
    if merge is not None:
        boxes, scores = _merge_overlapping(boxes, scores, merge)
    return Bunch(boxes=boxes, scores=scores,
                 red_cell=red_cell * step, shape=field.shape[:2])


def crop_cells(field, boxes, size):
    """Square crops of ``field`` at ``boxes``, each resized to ``size`` px.

    A box that reaches past the field (a cell at its border) is completed
    with the field's edge pixels, so that every crop is square and the cell
    keeps its proportions.

    Parameters
    ----------
    field : ndarray of shape (H, W, 3), uint8
    boxes : ndarray of shape (n, 4)
        ``x0, y0, x1, y1`` in pixels (:func:`find_white_cells`).
    size : int

    Returns
    -------
    ndarray of shape (n, size, size, 3), uint8

    Examples
    --------
    >>> import numpy as np
    >>> from leukosk.fields import crop_cells
    >>> field = np.zeros((40, 60, 3), np.uint8)
    >>> crop_cells(field, np.array([[50.0, 0.0, 70.0, 30.0]]), 16).shape
    (1, 16, 16, 3)
    """
    from PIL import Image

    field = _as_field(field)
    crops = np.empty((len(boxes), size, size, 3), np.uint8)
    for i, (x0, y0, x1, y1) in enumerate(np.asarray(boxes, dtype=float)):
        side = max(x1 - x0, y1 - y0, 1.0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
        right, bottom = left + int(round(side)), top + int(round(side))
        pad = max(0, -left, -top, right - field.shape[1], bottom - field.shape[0])
        padded = np.pad(field, ((pad, pad), (pad, pad), (0, 0)), mode="edge") if pad \
            else field
        square = padded[top + pad:bottom + pad, left + pad:right + pad]
        crops[i] = np.asarray(Image.fromarray(square).resize((size, size),
                                                             Image.Resampling.BILINEAR))
    return crops


def classify_fields(clf, fields, **finder):
    """Find the white cells of each field and classify each from its crop.

    Each cell is cropped at its own scale (its box, :func:`find_white_cells`)
    and resized to the model's decoding size, so that the model sees it as it
    sees an analyser's crop of one cell (the cell-centred view then frames
    it as in training): the shipped model needs no new training.

    Parameters
    ----------
    clf : fitted VGG19LeukocyteClassifier
    fields : sequence of path-like or ndarray
        Field images.
    **finder
        Options of :func:`find_white_cells`.

    Returns
    -------
    Bunch
        ``field`` (n,) the index in ``fields`` of each cell found, ``boxes``
        (n, 4), ``proba`` (n, n_classes), ``labels`` (n,), ``scores`` (n,),
        ``empty`` (the indices of the fields where no white cell was found),
        ``crops`` (n, size, size, 3).

    Examples
    --------
    >>> import numpy as np
    >>> from leukosk import load_pretrained
    >>> from leukosk.fields import classify_fields
    >>> field = np.full((120, 160, 3), (235, 225, 215), np.uint8)
    >>> yy, xx = np.mgrid[:120, :160]
    >>> for cy, cx in [(20, 20), (20, 130), (100, 30), (100, 140), (60, 20)]:
    ...     field[(yy - cy) ** 2 + (xx - cx) ** 2 < 81] = (215, 150, 170)
    >>> field[(yy - 60) ** 2 + (xx - 80) ** 2 < 144] = (120, 60, 150)
    >>> cells = classify_fields(load_pretrained(device="cpu"), [field, field[:, :40]])
    >>> cells.field.tolist(), cells.proba.shape, cells.empty.tolist()
    ([0], (1, 8), [1])
    """
    cells = field_cells(fields, clf.decode_size_, **finder)
    proba = clf.predict_proba(cells.crops) if len(cells.crops) else \
        np.empty((0, len(clf.classes_)))
    return Bunch(**cells, proba=proba, labels=clf.classes_[proba.argmax(axis=1)])


def field_cells(fields, size, **finder):
    """The white cells of each field, found and cropped (``size`` px): what
    :func:`classify_fields` classifies, without the model.

    Returns
    -------
    Bunch
        ``field``, ``boxes``, ``scores``, ``crops`` and ``empty``, as
        :func:`classify_fields`.

    Examples
    --------
    >>> import numpy as np
    >>> from leukosk.fields import field_cells
    >>> field = np.full((120, 160, 3), (235, 225, 215), np.uint8)
    >>> yy, xx = np.mgrid[:120, :160]
    >>> for cy, cx in [(20, 20), (20, 130), (100, 30), (100, 140), (60, 20)]:
    ...     field[(yy - cy) ** 2 + (xx - cx) ** 2 < 81] = (215, 150, 170)
    >>> field[(yy - 60) ** 2 + (xx - 80) ** 2 < 144] = (120, 60, 150)
    >>> cells = field_cells([field, field[:, :40]], 32)
    >>> cells.field.tolist(), cells.crops.shape, cells.empty.tolist()
    ([0], (1, 32, 32, 3), [1])
    """
    found, crops = [], []
    for image in fields:  # one field decoded at a time, once
        field = _as_field(image)
        found.append(find_white_cells(field, **finder))
        crops.append(crop_cells(field, found[-1].boxes, size))
    return Bunch(field=np.repeat(np.arange(len(found)), [len(r.boxes) for r in found]),
                 boxes=np.concatenate([r.boxes for r in found] + [np.empty((0, 4))]),
                 scores=np.concatenate([r.scores for r in found] + [np.empty(0)]),
                 crops=np.concatenate(crops + [np.empty((0, size, size, 3), np.uint8)]),
                 empty=np.array([i for i, r in enumerate(found) if not len(r.boxes)],
                                dtype=int))


_CELL_NAME = re.compile(r"(.*)#(-?\d+),(-?\d+),(-?\d+),(-?\d+)", re.DOTALL)


def cell_name(field, box):
    """The name of a cell found in a field: the field's name and the box in
    whole pixels, ``field.jpg#x0,y0,x1,y1`` (as ``leukosk count --fields``
    names cells on its review page and in ``corrections.csv``).

    Examples
    --------
    >>> from leukosk.fields import cell_name, parse_cell_name
    >>> cell_name("day1/f03.jpg", [10.4, 20.6, 80.0, 91.2])
    'day1/f03.jpg#10,21,80,91'
    >>> parse_cell_name("day1/f03.jpg#10,21,80,91")
    ('day1/f03.jpg', (10, 21, 80, 91))
    >>> parse_cell_name("day1/cell.jpg") is None
    True
    """
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    return f"{field}#{x0},{y0},{x1},{y1}"


def parse_cell_name(name):
    """``(field, box)`` of a name :func:`cell_name` wrote; None for any other name."""
    match = _CELL_NAME.fullmatch(str(name))
    if match is None:
        return None
    x0, y0, x1, y1 = (int(v) for v in match.groups()[1:])
    if x1 <= x0 or y1 <= y0:
        return None
    return match.group(1), (x0, y0, x1, y1)


def read_cells(items, size):
    """Cells as images of ``size`` px: an image file decoded, or a cell of a
    field (``field.jpg#x0,y0,x1,y1``, a path then its box) cropped as
    :func:`field_cells` crops it.

    Parameters
    ----------
    items : sequence of str
    size : int

    Returns
    -------
    ndarray of shape (n, size, size, 3), uint8

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> from leukosk.fields import read_cells
    >>> with tempfile.TemporaryDirectory() as d:
    ...     Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(f"{d}/f.png")
    ...     read_cells([f"{d}/f.png", f"{d}/f.png#5,5,25,25"], 16).shape
    (2, 16, 16, 3)
    """
    import torch

    out = np.empty((len(items), size, size, 3), np.uint8)
    for i, item in enumerate(items):
        parsed = parse_cell_name(item)
        if parsed is None:  # resized as files are for the model (resize_batch)
            chw = torch.from_numpy(decode_image(item)).permute(2, 0, 1)[None]
            out[i] = resize_batch(chw, size)[0].permute(1, 2, 0).numpy()
        else:
            out[i] = crop_cells(decode_image(parsed[0]), np.array([parsed[1]], float),
                                size)[0]
    return out
