"""The cell-centred view: find the white cell in each image and crop around it.

PBC's images are wide fields (a cell in the middle of 360 x 363 px, red cells
around it); other labs crop tighter, shoot at another magnification, or do not
centre the cell. A fixed central crop then shows the network a different
view in every lab. :func:`locate_cells` finds the white cell instead: its
nucleus is the most strongly stained region of a Romanowsky-stained smear
(it absorbs green light in every lab's stain, whatever the background's
colour), so the pixels much darker in green than the image's background,
weighted towards the centre, give the cell's centre and the nucleus's extent.
The square kept is ``scale`` times that extent, bounded to
``[min_side, 1]`` of the image's side, so that the zoom adapts to the lab's
magnification while a lymphocyte still looks smaller than a monocyte within
the bound. Images without such pixels (platelets, empty fields) fall back to
the central ``fallback`` fraction.

Everything is batched tensor arithmetic (no loop over images), runs inside the
model's preprocessing on its device, and is deterministic.
"""

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

__all__ = ["locate_cells", "crop_boxes", "background_white"]

#: Side of the map the nucleus is searched on (a downsampled green channel).
_MAP = 48


def _green_map(images):
    """(n, _MAP, _MAP) float map of each image's green channel in [0, 1]."""
    green = images[:, 1:2].float()
    if images.dtype == torch.uint8:
        green = green / 255.0
    return F.adaptive_avg_pool2d(green, _MAP)[:, 0]


def _centre_prior(device, width=0.3):
    """Gaussian weights around the image centre (sd ``width`` of the side)."""
    grid = (torch.arange(_MAP, device=device, dtype=torch.float32) + 0.5) / _MAP - 0.5
    return torch.exp(-(grid[:, None] ** 2 + grid[None, :] ** 2) / (2 * width ** 2))


def locate_cells(images, *, threshold=0.55, scale=1.8, min_side=0.35, max_side=1.5,
                 fallback=0.6, min_area=0.004):
    """A square box around the white cell of each image, as fractions of its size.

    Parameters
    ----------
    images : torch.Tensor of shape (n, 3, H, W)
        RGB, ``uint8`` or float in [0, 1].
    threshold : float, default=0.55
        A pixel is nucleus where its green is below ``threshold`` times the
        image's background green (its 90th percentile).
    scale : float, default=1.8
        The box's side is ``scale`` times the nucleus's extent (four standard
        deviations of its pixels along the wider axis: a disk's diameter).
    min_side, max_side : float, default=0.35, 1.5
        Smallest and largest side, as fractions of the image's (bound the
        zoom). Above 1 the box reaches past the image, whose edge pixels
        continue the background there (:func:`crop_boxes`): a cell that
        fills another lab's frame is shown at the size PBC's cells have.
    fallback : float, default=0.6
        Side of the central box used where no nucleus is found.
    min_area : float, default=0.004
        Least fraction of the image's pixels that must be nucleus.

    Returns
    -------
    boxes : torch.Tensor of shape (n, 4)
        ``(x0, y0, x1, y1)`` as fractions of the image's width and height,
        square in the image's own proportions, shifted to lie inside the image
        (centred on it where the side exceeds 1).
    found : torch.Tensor of shape (n,), bool
        Where a nucleus was found (elsewhere the box is the central fallback).

    Examples
    --------
    >>> import torch
    >>> from leukosk.nn._cellview import locate_cells
    >>> image = torch.full((1, 3, 100, 100), 230, dtype=torch.uint8)
    >>> image[:, :, 10:30, 60:80] = 40          # a dark 20 px "nucleus"
    >>> boxes, found = locate_cells(image)
    >>> found.tolist(), [round(v, 2) for v in boxes[0].tolist()]
    ([True], [0.5, 0.02, 0.88, 0.4])
    """
    green = _green_map(images)
    background = torch.quantile(green.flatten(1), 0.9, dim=1).clamp_min(1e-3)
    cut = (threshold * background)[:, None, None]
    prior = _centre_prior(green.device)
    weight = ((cut - green) / cut).clamp_min(0) * prior
    mass = weight.sum(dim=(1, 2))
    found = (green < cut).float().mean(dim=(1, 2)) >= min_area
    coords = (torch.arange(_MAP, device=green.device, dtype=torch.float32) + 0.5) / _MAP
    wy, wx = weight.sum(dim=2), weight.sum(dim=1)
    total = mass.clamp_min(1e-6)
    cy, cx = (wy * coords).sum(1) / total, (wx * coords).sum(1) / total
    var_y = (wy * (coords - cy[:, None]) ** 2).sum(1) / total
    var_x = (wx * (coords - cx[:, None]) ** 2).sum(1) / total
    extent = 4 * torch.maximum(var_y, var_x).sqrt()
    side = (scale * extent).clamp(min_side, max_side)
    side = torch.where(found, side, torch.full_like(side, fallback))
    centre_x = torch.where(found, cx, torch.full_like(cx, 0.5))
    centre_y = torch.where(found, cy, torch.full_like(cy, 0.5))
    half = side / 2
    low, high = torch.minimum(half, 1 - half), torch.maximum(half, 1 - half)
    centre_x = torch.maximum(torch.minimum(centre_x, high), low)
    centre_y = torch.maximum(torch.minimum(centre_y, high), low)
    boxes = torch.stack([centre_x - half, centre_y - half, centre_x + half,
                         centre_y + half], dim=1)
    return boxes, found


def crop_boxes(images, boxes, size):
    """Crop each image to its box (fractions) and resize to ``size x size``.

    Bilinear sampling averaged over each output pixel's area (torchvision's
    ``roi_align``), so that shrinking does not alias. Where a box reaches
    past the image, the image's edge pixels are repeated outwards.

    Parameters
    ----------
    images : torch.Tensor of shape (n, C, H, W), float
    boxes : torch.Tensor of shape (n, 4), ``(x0, y0, x1, y1)`` in [0, 1]
    size : int

    Returns
    -------
    torch.Tensor of shape (n, C, size, size)

    Examples
    --------
    >>> import torch
    >>> from leukosk.nn._cellview import crop_boxes
    >>> x = torch.arange(16.0).view(1, 1, 4, 4)
    >>> crop_boxes(x, torch.tensor([[0.5, 0.5, 1.0, 1.0]]), 2)[0, 0].tolist()
    [[10.0, 11.0], [14.0, 15.0]]
    """
    height, width = images.shape[-2:]
    reach = float(torch.clamp(torch.cat([-boxes[:, :2], boxes[:, 2:] - 1]), min=0).max())
    pad_y, pad_x = (int(torch.tensor(reach * n).ceil()) for n in (height, width))
    if pad_x or pad_y:
        images = F.pad(images, (pad_x, pad_x, pad_y, pad_y), mode="replicate")
    scale = torch.tensor([width, height, width, height], dtype=images.dtype,
                         device=images.device)
    shift = torch.tensor([pad_x, pad_y, pad_x, pad_y], dtype=images.dtype,
                         device=images.device)
    rois = torch.cat([torch.arange(len(images), dtype=images.dtype,
                                   device=images.device)[:, None],
                      boxes.to(images.dtype) * scale + shift], dim=1)
    return roi_align(images, rois, output_size=size, spatial_scale=1.0,
                     sampling_ratio=-1, aligned=True)


def background_white(images, quantile=0.9):
    """Each image's background colour: the ``quantile`` of each channel.

    A smear's background (plasma, glass) is the brightest large region of the
    field; dividing by its colour white-balances the image, removing the tint
    of a lab's lamp, camera and background (PBC's pinkish, another lab's
    yellow) but not the stain's contrast.

    Parameters
    ----------
    images : torch.Tensor of shape (n, 3, H, W), uint8 or float in [0, 1]
    quantile : float, default=0.9

    Returns
    -------
    torch.Tensor of shape (n, 3, 1, 1), float in (0, 1]

    Examples
    --------
    >>> import torch
    >>> from leukosk.nn._cellview import background_white
    >>> yellow = torch.tensor([255, 250, 160], dtype=torch.uint8).view(1, 3, 1, 1)
    >>> background_white(yellow.expand(1, 3, 8, 8)).flatten().tolist()
    [1.0, 0.98039..., 0.62745...]
    """
    x = images.float()
    if images.dtype == torch.uint8:
        x = x / 255.0
    small = F.adaptive_avg_pool2d(x, _MAP).flatten(2)
    return torch.quantile(small, quantile, dim=2).clamp_min(0.05)[..., None, None]
