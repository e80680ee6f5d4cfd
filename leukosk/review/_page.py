"""The review page: one sample's cells, by class, for a technologist to correct.

:func:`write_review_page` writes ``index.html`` into a folder, with the
images it shows in ``cells/`` beside it (relative paths only, so the folder
can be moved, zipped or opened offline). The page opens with a warning
when the images look like another lab's (a lab shift), then shows the differential
count with its intervals; the cells referred to an expert first, each with
its image, prediction set, top-3 probabilities and Grad-CAM overlay; then
every cell grouped by predicted class, least confident first. Clicking a cell
picks its true class: the differential on the page follows, and a button
downloads ``corrections.csv`` (``file``, ``model_class``,
``corrected_class``), which ``leukosk adapt`` (:func:`leukosk.corrections.
adapt_to_corrections`) turns into a better model.

Plain HTML and a short script (:mod:`leukosk.review._template`): no server,
no network, nothing from the user's files is ever parsed as HTML. Every name
(cells, classes, the title) is in the one encoding of names
(:func:`leukosk.utils._output.encode_name`), as in ``count.csv`` and
``count.json``: ``corrections.csv`` gives it back, and ``leukosk adapt``
reads it back exactly.
"""

import html
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..utils._files import atomic_path, remove_dead_temps, writer_tempdir
from ..utils._images import check_images, decode_image, take_images
from ..utils._output import encode_name
from ._template import SCRIPT, STYLE

__all__ = ["write_review_page", "display_names"]

PAGE = "index.html"
CELLS = "cells"
FIELDS = "fields"


def display_names(images, root=None):
    """Names of the cells as the page and ``corrections.csv`` show them.

    Paths relative to ``root`` (by default the folder the files share), with
    ``/`` separators; ``cell 1``, ``cell 2``... for an image array. No
    absolute path of the machine appears.

    Examples
    --------
    >>> from leukosk.review import display_names
    >>> display_names(["/data/s1/a.jpg", "/data/s1/mono/b.jpg"])
    ['a.jpg', 'mono/b.jpg']
    >>> display_names(["/data/s1/a.jpg"], root="/data")
    ['s1/a.jpg']
    """
    if isinstance(images, np.ndarray) and images.dtype.kind not in "USO":
        return [f"cell {i + 1}" for i in range(len(images))]
    paths = [os.path.abspath(p) for p in images]
    if root is None:
        root = os.path.commonpath([os.path.dirname(p) for p in paths]) if paths else "."
    return [Path(os.path.relpath(p, os.path.abspath(root))).as_posix() for p in paths]


def _pixels(images, i):
    return images[i] if isinstance(images, np.ndarray) else decode_image(images[i])


def _save_jpeg(array, path, size):
    from PIL import Image

    image = Image.fromarray(np.asarray(array, dtype=np.uint8))
    image.thumbnail((size, size))
    image.save(path, format="JPEG", quality=85)


def _referred_indices(count):
    return [int(row["index"]) for row in count.referred]


def _write_cells(folder, images, count, clf, sizes):
    """Thumbnails of all cells, and the referred cells larger with their
    Grad-CAM overlays, in ``folder`` (a fresh temporary folder)."""
    thumb_size, large_size = sizes
    referred = _referred_indices(count)
    for i in range(count.n_cells):
        _save_jpeg(_pixels(images, i), folder / f"{i:06d}.jpg", thumb_size)
    cams = _grad_cams(clf, images, referred)
    for k, i in enumerate(referred):
        pixels = _pixels(images, i)
        _save_jpeg(pixels, folder / f"{i:06d}_large.jpg", large_size)
        if cams is not None:
            from ..reports import overlay

            _save_jpeg(overlay(pixels, cams[k]), folder / f"{i:06d}_gradcam.jpg",
                       large_size)
    return cams is not None


def _write_fields(folder, fields, size):
    """Each field that holds a cell, at most ``size`` px on its longer side,
    in ``folder``; its name and pixel size."""
    from PIL import Image

    shown = {}
    for k in np.unique(fields.field):
        pixels = np.asarray(_pixels(fields.paths, int(k)), dtype=np.uint8)
        image = Image.fromarray(pixels)
        image.thumbnail((size, size))
        image.save(folder / f"{int(k):06d}.jpg", format="JPEG", quality=85)
        shown[int(k)] = pixels.shape[:2]
    return shown


def _field_data(fields, shape_of):
    """Per cell: its field's image, its pixel size (so that the page lays the
    field out before the image has loaded) and its box as percentages."""
    out = []
    for k, box in zip(fields.field, fields.boxes):
        height, width = shape_of[int(k)]
        x0, y0, x1, y1 = (float(v) for v in box)
        out.append({"src": f"{FIELDS}/{int(k):06d}.jpg", "size": [width, height],
                    "box": [round(100 * x0 / width, 3), round(100 * y0 / height, 3),
                            round(100 * (x1 - x0) / width, 3),
                            round(100 * (y1 - y0) / height, 3)]})
    return out


def _grad_cams(clf, images, indices):
    if clf is None or not indices or not hasattr(clf, "module_"):
        return None
    from ..explain import grad_cam

    maps, _ = grad_cam(clf, take_images(images, indices))
    return maps


def _replace_folder(built, target):
    """Put the folder ``built`` at ``target``, replacing what was there."""
    old = None
    if target.exists():
        old = writer_tempdir(target.parent, f".{target.name}.old.")
        os.replace(target, old / target.name)
    os.replace(built, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _cell_data(count, names, with_cams):
    """One JSON-ready dict per cell: what the page shows of it."""
    classes = [encode_name(c) for c in count.classes]
    sets = {int(row["index"]): [encode_name(c) for c in row["set"]]
            for row in count.referred}
    cells = []
    for i, (label, proba) in enumerate(zip(count.labels, count.proba)):
        top = np.argsort(-proba, kind="stable")[:3]
        cell = {"name": encode_name(names[i]), "predicted": encode_name(label),
                "confidence": float(proba.max()),
                "top3": [[classes[k], round(float(proba[k]), 4)] for k in top],
                "thumb": f"{CELLS}/{i:06d}.jpg"}
        if i in sets:
            cell.update(set=sets[i], image=f"{CELLS}/{i:06d}_large.jpg",
                        cam=f"{CELLS}/{i:06d}_gradcam.jpg" if with_cams else None)
        cells.append(cell)
    return cells


def _page_data(count, names, with_cams, fields=None, shape_of=None):
    from scipy.stats import norm

    confidence = np.asarray([c.max() for c in count.proba]) if count.n_cells else []
    return {
        "classes": [encode_name(c) for c in count.classes],
        "z": float(norm.ppf(0.5 + count.confidence / 2)),
        "table": [{"count": row["count"], "percent": f"{row['percent']:.1f}",
                   "interval": f"[{row['ci_low']:.1f}, {row['ci_high']:.1f}]"}
                  for row in count.table],
        "cells": _cell_data(count, names, with_cams),
        "referred": _referred_indices(count),
        "order": [int(i) for i in np.argsort(confidence, kind="stable")],
        "fields": None if fields is None else _field_data(fields, shape_of),
        "empty": [] if fields is None else [encode_name(n) for n in fields.empty_names],
    }


def _script_json(data):
    """JSON that cannot end its ``<script>`` element early."""
    text = json.dumps(data, ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _differential_rows(count):
    rows = []
    for k, row in enumerate(count.table):
        rows.append(
            f'<tr data-row="{k}"><td class="class">{html.escape(encode_name(row["class"]))}</td>'
            f'<td class="count">{row["count"]}</td>'
            f'<td class="percent">{row["percent"]:.1f}</td>'
            f'<td class="interval">[{row["ci_low"]:.1f}, {row["ci_high"]:.1f}]</td>'
            '<td><div class="bar"><div class="fill"></div><div class="ci"></div>'
            '</div></td></tr>')
    return "\n".join(rows)


def _referral_line(count):
    if count.referral is None:
        return ("No conformal sets were given, so no cell is referred; the groups "
                "below still show the least confident cells first.")
    return (f"{len(count.referred)} of {count.n_cells} cells are referred: their "
            f"{html.escape(count.referral)} do not hold exactly one class.")


def _lab_shift_warning(lab_shift):
    """The warning the page opens with when the images look like another
    lab's (``lab_shift["shifted"]``); empty otherwise."""
    if not (lab_shift or {}).get("shifted"):
        return ""
    from ..domain import lab_shift_reasons

    reasons = lab_shift_reasons(lab_shift["score"], lab_shift["threshold"],
                       lab_shift.get("unsure"), lab_shift.get("unsure_threshold"))
    return ('<div class="warning" id="lab-shift" role="alert"><strong>Warning: '
            "these images do not look like the images this model was trained "
            f"on</strong> ({html.escape(' and '.join(reasons))}). "
            "The model's accuracy here is unmeasured, and its "
            "classes, probabilities and referrals may be confidently wrong: check "
            "the cells by eye, and adapt the model to this lab's images before "
            "trusting this count.</div>\n")


def _empty_fields(data):
    """The line listing the fields where no white cell was found."""
    if data["fields"] is None:
        return ""
    empty = data["empty"]
    if not empty:
        return "<p>A white cell was found in every field.</p>\n"
    shown = ", ".join(html.escape(n) for n in empty[:50])
    more = f" and {len(empty) - 50} more" if len(empty) > 50 else ""
    return (f'<p id="empty-fields">No white cell was found in {len(empty)} '
            f"field(s): {shown}{more}.</p>\n")


def _html(count, data, title, lab_shift=None):
    title = html.escape(encode_name(title))
    confidence = f"{count.confidence:.0%}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{title}</title><style>{STYLE}</style></head>
<body>
{_lab_shift_warning(lab_shift)}<h1>{title}</h1>
<h2>Differential count</h2>
<p>{count.n_cells} cells; share of each class with its {confidence} Wilson interval.
Click a cell to give its true class: the count follows{
    "" if data["fields"] is None else ", and the cell is shown in its field"}.</p>
{_empty_fields(data)}
<table class="differential" id="differential">
<tr><th>class</th><th>count</th><th>%</th><th>{confidence} interval (%)</th><th></th></tr>
{_differential_rows(count)}
</table>
<div class="toolbar">
<span id="n-corrected">0</span> corrected, <span id="n-confirmed">0</span> confirmed.
<button type="button" id="download">Download corrections.csv</button>
<label><input type="checkbox" id="with-confirmed"> also list every other cell
as confirmed (after sign-off)</label>
</div>
<h2>Referred to an expert</h2>
<p>{_referral_line(count)}</p>
<div class="referred" id="referred-cells"></div>
<h2>All cells by predicted class, least confident first</h2>
<div id="groups"></div>
<div id="picker" hidden role="dialog" aria-label="true class">
<div class="title"></div><div class="predicted"></div>
<div class="field-view" id="field-view" hidden><img alt="the cell's field"><div class="box"></div></div>
<div id="picker-classes"></div>
<button type="button" id="undo">undo my choice</button>
<button type="button" id="close">close</button>
</div>
<script type="application/json" id="leukosk-data">{_script_json(data)}</script>
<script>{SCRIPT}</script>
</body></html>
"""


def write_review_page(out_dir, count, images, *, clf=None, names=None,
                      title="leukosk review", lab_shift=None, thumbnail_size=96,
                      image_size=192, fields=None, field_size=640):
    """Write the review page of one sample: ``out_dir/index.html`` and ``cells/``.

    Parameters
    ----------
    out_dir : path-like
        Created if missing; ``index.html`` and ``cells/`` in it are replaced
        (each at once: a reader sees the old or the new, never a mix).
    count : Bunch
        From :func:`leukosk.count.differential_count` on ``images``.
    images : array of shape (n, H, W, 3) or sequence of image paths
        The same cells, in the same order.
    clf : fitted VGG19LeukocyteClassifier, default=None
        Draws the Grad-CAM overlay of each referred cell; none without it.
    names : sequence of str, default=None
        The cells' names on the page and in ``corrections.csv``; by default
        :func:`display_names` (paths relative to the folder they share).
    title : str, default="leukosk review"
    lab_shift : Bunch or dict, default=None
        The verdict of :func:`leukosk.domain.watch_lab_shift` (``score``,
        ``threshold``, ``shifted``): if ``shifted``, the page opens with the
        warning that the images look like another lab's.
    thumbnail_size : int, default=96
        Side of the thumbnails in pixels (small, so that 2,000 cells load
        fast); referred cells are shown at ``image_size``.
    image_size : int, default=192
    fields : Bunch, default=None
        Where the cells come from microscope fields (``leukosk count
        --fields``): ``paths`` (the field images), ``field`` (each cell's
        index in ``paths``), ``boxes`` (each cell's box in its field's
        pixels, as :func:`leukosk.fields.field_cells` gives them) and
        ``empty_names`` (the fields without a white cell, listed on the
        page). The fields are written to ``fields/``, and clicking a cell
        shows it boxed in its field.
    field_size : int, default=640
        Longer side of the fields shown, in pixels.

    Returns
    -------
    pathlib.Path
        The page.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from sklearn.dummy import DummyClassifier
    >>> from leukosk.count import differential_count
    >>> from leukosk.review import write_review_page
    >>> X = np.zeros((6, 16, 16, 3), np.uint8)
    >>> model = DummyClassifier(strategy="prior").fit(np.zeros((2, 1)), ["ig", "monocyte"])
    >>> count = differential_count(model, X)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     page = write_review_page(d, count, X)
    ...     page.name, len(list(pathlib.Path(d, "cells").iterdir()))
    ('index.html', 6)
    """
    out = Path(out_dir)
    images = check_images(images)
    if len(images) != count.n_cells:
        raise ValueError(f"count has {count.n_cells} cells but {len(images)} images "
                         "were given; pass the images the count was made from.")
    names = display_names(images) if names is None else [str(n) for n in names]
    out.mkdir(parents=True, exist_ok=True)
    with _fresh_folder(out, CELLS) as built:
        with_cams = _write_cells(built, images, count, clf, (thumbnail_size, image_size))
    shape_of = None
    if fields is not None:
        if len(fields.field) != count.n_cells:
            raise ValueError(f"fields names {len(fields.field)} cells, the count "
                             f"{count.n_cells}; pass the fields the cells came from.")
        with _fresh_folder(out, FIELDS) as built:
            shape_of = _write_fields(built, fields, field_size)
    page = out / PAGE
    with atomic_path(page) as tmp:
        tmp.write_text(_html(count, _page_data(count, names, with_cams, fields, shape_of),
                             title, lab_shift), encoding="utf-8")
    return page


@contextmanager
def _fresh_folder(out, name):
    """A temporary folder in ``out`` that replaces ``out/name`` when the
    block succeeds (a reader sees the old or the new, never a mix)."""
    remove_dead_temps(out, f".{name}.")  # left by a killed writer
    remove_dead_temps(out, f".{name}.old.")
    built = writer_tempdir(out, f".{name}.")
    try:
        yield built
        _replace_folder(built, out / name)
    finally:
        shutil.rmtree(built, ignore_errors=True)
