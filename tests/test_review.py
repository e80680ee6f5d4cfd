"""The review page: written by ``leukosk count``, used in a real browser.

The browser tests start the system's Chromium (Debian's ``chromium``
package; ``.ci/run`` installs it) through playwright, headless and offline;
they are skipped, with the reason, where either is missing.
"""

import csv
import json
import os
import re
import shutil
import time

import matplotlib
import numpy as np
import pytest
from PIL import Image

matplotlib.use("Agg")

from leukosk.cli import main
from leukosk.corrections import read_corrections
from leukosk.count import differential_count, wilson_interval
from leukosk.datasets import sample_folder
from leukosk.review._page import display_names, write_review_page
from leukosk.utils._output import encode_name

EVIL = "<img src=x onerror=alert(1)>.jpg"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _chromium():
    for name in (os.environ.get("LEUKOSK_CHROMIUM"), "chromium", "chromium-browser",
                 "google-chrome"):
        path = name and shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser():
    """A headless system Chromium driven by playwright (skip without either)."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install "
        "'leukosk[test]')")
    executable = _chromium()
    if executable is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium; "
                    "or set LEUKOSK_CHROMIUM=/path/to/chrome)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable,
                                             args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def counted(tmp_path_factory):
    """``leukosk count default`` on 24 bundled cells and one evilly named file."""
    root = tmp_path_factory.mktemp("review")
    folder = root / "sample"
    for name in ("lymphocyte", "monocyte", "ig"):
        (folder / name).mkdir(parents=True)
        for src in sorted((sample_folder() / name).glob("*.jpg"))[:8]:
            shutil.copyfile(src, folder / name / src.name)
    shutil.copyfile(next((sample_folder() / "basophil").glob("*.jpg")), folder / EVIL)
    out = root / "out"
    assert main(["count", "default", str(folder), "--out", str(out), "--device",
                 "cpu", "--quiet"]) == 0
    return folder, out


def _open(browser, page_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900},
                            accept_downloads=True)
    events = []
    page.on("dialog", lambda dialog: (events.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda error: events.append(f"error: {error}"))
    page.on("request", lambda request: None if request.url.startswith("file:") else
            events.append(f"network: {request.url}"))
    page.goto(page_path.as_uri())
    page.wait_for_selector(".grid .cell")
    return page, events


def _shown(page):
    """The differential as the page shows it: class -> (count, %, interval)."""
    rows = {}
    for row in page.locator("#differential tr[data-row]").all():
        rows[row.locator(".class").inner_text()] = (
            int(row.locator(".count").inner_text()), row.locator(".percent").inner_text(),
            row.locator(".interval").inner_text())
    return rows


def _expected(table):
    return {row["class"]: (row["count"], f"{row['percent']:.1f}",
                           f"[{row['ci_low']:.1f}, {row['ci_high']:.1f}]")
            for row in table}


def test_count_writes_a_self_contained_page(counted):
    folder, out = counted
    text = (out / "index.html").read_text()
    assert EVIL not in text and "<img src=x" not in text  # escaped everywhere
    assert str(folder) not in text and str(out) not in text  # no machine paths
    assert "http://" not in text and "https://" not in text  # no CDN
    for src in re.findall(r'"(?:thumb|image|cam)": "([^"]+)"', text):
        assert not os.path.isabs(src) and (out / src).is_file()
    cells = json.loads(re.search(r'id="leukosk-data">(.*?)</script>', text).group(1))
    assert {cell["name"] for cell in cells["cells"]} >= {EVIL, "ig/" + sorted(
        p.name for p in (folder / "ig").glob("*.jpg"))[0]}
    referred = json.loads((out / "count.json").read_text())["referred"]
    assert cells["referred"] == [row["index"] for row in referred]
    for i in cells["referred"]:
        assert (out / cells["cells"][i]["cam"]).is_file()
        assert len(cells["cells"][i]["top3"]) == 3


def test_page_in_a_browser(browser, counted, tmp_path):
    folder, out = counted
    page, events = _open(browser, out / "index.html")
    document = json.loads((out / "count.json").read_text())
    assert _shown(page) == _expected(document["table"])
    assert page.locator(".grid .cell").count() == document["n_cells"]
    assert page.locator("#referred-cells .card").count() == len(document["referred"])
    # the evil name is shown as text and ran nothing
    evil = [img for img in page.locator(".grid .cell img").all()
            if img.get_attribute("alt") == EVIL]
    assert len(evil) == 1
    evil[0].click()
    assert page.locator("#picker .title").inner_text() == EVIL
    page.click("#close")
    # reclassify the least confident cell of the largest class
    largest = max(document["table"], key=lambda row: row["count"])["class"]
    cell = page.locator(f'.grid[data-class="{largest}"] .cell').first
    name = cell.get_attribute("title").rsplit(":", 1)[0]
    cell.click()
    target = "basophil" if largest != "basophil" else "platelet"
    page.locator(f'#picker-classes button[data-class="{target}"]').click()
    moved = page.locator(f'.grid[data-class="{target}"] .cell[title^="{name}:"]')
    assert moved.count() == 1
    n, counts = document["n_cells"], {r["class"]: r["count"] for r in document["table"]}
    counts[largest] -= 1
    counts[target] += 1
    shown = _shown(page)
    for label, k in counts.items():
        low, high = wilson_interval(k, n, document["confidence"])
        assert shown[label][0] == k
        assert float(shown[label][1]) == pytest.approx(100 * k / n, abs=0.051)
        bounds = [float(v) for v in shown[label][2].strip("[]").split(",")]
        assert bounds == pytest.approx([100 * low, 100 * high], abs=0.051)
    with page.expect_download() as download:
        page.click("#download")
    saved = tmp_path / "corrections.csv"
    download.value.save_as(saved)
    with open(saved, newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [["file", "model_class", "corrected_class"], [name, largest, target]]
    page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
    assert (tmp_path / "review.png").stat().st_size > 10_000
    assert events == []  # no alert, no script error, no network request
    page.close()


def test_sign_off_lists_confirmed_cells(browser, counted, tmp_path):
    _, out = counted
    page, events = _open(browser, out / "index.html")
    page.check("#with-confirmed")
    with page.expect_download() as download:
        page.click("#download")
    download.value.save_as(tmp_path / "all.csv")
    with open(tmp_path / "all.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == page.locator(".grid .cell").count()
    assert all(row["model_class"] == row["corrected_class"] for row in rows)
    assert events == []
    page.close()


def _download(page, path, with_confirmed=True):
    """corrections.csv as the page's button saves it."""
    if with_confirmed:
        page.check("#with-confirmed")
    with page.expect_download() as download:
        page.click("#download")
    download.value.save_as(path)
    return path


#: Names the page and corrections.csv must give back exactly (issue 29, 4).
ROUND_TRIP = ["'=x.jpg", " a.jpg", "a.jpg", "back\\slash.jpg", "tab\tx.jpg",
              os.fsdecode(b"cell\xff.jpg")]


def test_every_name_comes_back_from_the_page_exactly(browser, tmp_path):
    # issue 29, 4: an apostrophe was lost, a leading space stripped (another
    # image trained on), a name that is not UTF-8 came back as U+FFFD
    folder = tmp_path / "sample"
    folder.mkdir()
    source = next((sample_folder() / "basophil").glob("*.jpg"))
    for name in ROUND_TRIP:
        shutil.copyfile(source, os.path.join(folder, name))
    out = tmp_path / "out"
    assert main(["count", "default", str(folder), "--out", str(out), "--device", "cpu",
                 "--quiet"]) == 0
    page, events = _open(browser, out / "index.html")
    shown = [img.get_attribute("alt") for img in page.locator(".grid .cell img").all()]
    assert sorted(shown) == sorted(map(encode_name, ROUND_TRIP))  # the one encoding
    fixes = read_corrections(_download(page, tmp_path / "corrections.csv"), images=folder)
    assert sorted(os.path.basename(f) for f in fixes.files) == sorted(ROUND_TRIP)
    assert events == []
    page.close()


def test_a_lab_shift_warning_opens_the_page(browser, tmp_path, capsys):
    # issue 29, 7: count.json said shifted and stderr warned; the page did not
    from conftest import FAST, make_images

    from leukosk import VGG19LeukocyteClassifier
    from leukosk.domain import LabShiftWarning

    X, y = make_images(n_per_class=4, classes=("a", "b"))
    clf = VGG19LeukocyteClassifier(**dict(FAST, batch_norm=True)).fit(X, y)
    clf.lab_shift_threshold_ = 0.0  # any image is another lab's
    model = clf.save(tmp_path / "model.safetensors")
    folder = tmp_path / "sample"
    folder.mkdir()
    for i, pixels in enumerate(make_images(n_per_class=12, classes=("a", "b"))[0]):
        Image.fromarray(pixels).save(folder / f"c{i}.png")
    out = tmp_path / "out"
    with pytest.warns(LabShiftWarning):
        assert main(["count", str(model), str(folder), "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "count.json").read_text())["lab_shift"]["shifted"] is True
    page, events = _open(browser, out / "index.html")
    first = page.locator("body > *").first
    assert first.get_attribute("id") == "lab-shift" and first.is_visible()
    assert "do not look like the images this model was trained on" in first.inner_text()
    assert events == []
    page.close()
    clf.lab_shift_threshold_ = 1e9  # no image is
    assert main(["count", str(clf.save(model)), str(folder), "--out", str(out),
                 "--quiet"]) == 0
    assert json.loads((out / "count.json").read_text())["lab_shift"]["shifted"] is False
    assert 'id="lab-shift"' not in (out / "index.html").read_text()


def test_classes_named_like_object_properties_or_with_nul(browser, tmp_path):
    # issue 29, 8: a class named __proto__ showed [object Object] / NaN (a
    # plain {} as a map), and a class with a NUL made a correction throw
    from sklearn.dummy import DummyClassifier

    classes = ["__proto__", "a\x00b", "constructor", "ig"]
    folder = tmp_path / "sample"
    folder.mkdir()
    names = [f"c{i}.png" for i in range(12)]
    X = np.random.default_rng(0).integers(0, 256, (12, 24, 24, 3), dtype=np.uint8)
    for name, pixels in zip(names, X):
        Image.fromarray(pixels).save(folder / name)
    model = DummyClassifier(strategy="stratified", random_state=0).fit(
        np.zeros((8, 1)), classes * 2)
    count = differential_count(model, X)
    page, events = _open(browser, write_review_page(tmp_path / "out", count, X,
                                                    names=names))
    shown = _shown(page)
    assert {k: v[0] for k, v in shown.items()} == {
        encode_name(row["class"]): row["count"] for row in count.table}
    for label in classes:  # each cell corrected to the next class
        cell = page.locator(f'.grid[data-class="{encode_name(label)}"] .cell').first
        if cell.count():
            cell.click()
            target = classes[(classes.index(label) + 1) % len(classes)]
            page.locator("#picker-classes button").filter(
                has_text=encode_name(target)).first.click()
    assert events == []
    fixes = read_corrections(_download(page, tmp_path / "c.csv", with_confirmed=False),
                             images=folder)
    assert set(fixes.target) <= set(classes) and len(fixes.target) >= 3
    assert "a\x00b" in set(fixes.target) | set(fixes.model_class)
    assert sum(v[0] for v in _shown(page).values()) == 12
    page.close()


def test_two_thousand_cells_stay_responsive(browser, tmp_path):
    from sklearn.dummy import DummyClassifier

    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (2000, 24, 24, 3), dtype=np.uint8)
    model = DummyClassifier(strategy="stratified", random_state=0).fit(
        np.zeros((8, 1)), ["ig", "lymphocyte", "monocyte", "neutrophil"] * 2)
    start = time.perf_counter()
    page_path = write_review_page(tmp_path, differential_count(model, X), X)
    assert time.perf_counter() - start < 60
    page, events = _open(browser, page_path)
    start = time.perf_counter()
    page.locator(".grid .cell").nth(1500).click()
    page.locator('#picker-classes button[data-class="ig"]').click()
    assert time.perf_counter() - start < 5
    assert page.locator("#n-corrected").inner_text() in ("0", "1")
    assert events == []
    page.close()


def test_library_page_checks_its_input(tmp_path):
    from sklearn.dummy import DummyClassifier

    X = np.zeros((3, 8, 8, 3), np.uint8)
    count = differential_count(DummyClassifier().fit(np.zeros((2, 1)), ["a", "b"]), X)
    with pytest.raises(ValueError, match="count has 3 cells but 2 images"):
        write_review_page(tmp_path, count, X[:2])
    assert display_names(X) == ["cell 1", "cell 2", "cell 3"]
    page = write_review_page(tmp_path, count, X, names=["x", "y", "</script>"])
    assert page.read_text().count("</script>") == 2  # the two real ones


def test_a_cell_of_a_field_is_shown_boxed_in_its_field(browser, tmp_path):
    """``leukosk count --fields``: clicking a cell shows its field with the
    box around it; the download names the cell by its field and box."""
    from test_fields import synthetic_field

    folder = tmp_path / "fields"
    folder.mkdir()
    field, centres = synthetic_field(np.random.default_rng(5), 2, red_cell=16)
    Image.fromarray(field).save(folder / "field0.png")
    out = tmp_path / "out"
    assert main(["count", "default", str(folder), "--fields", "--out", str(out),
                 "--device", "cpu", "--quiet"]) == 0
    page, events = _open(browser, out / "index.html")
    view = page.locator("#field-view")
    assert not view.is_visible()
    page.locator(".grid .cell").first.click()
    assert view.is_visible()
    page.wait_for_function("document.querySelector('#field-view img').complete")
    img = view.locator("img").bounding_box()
    box = view.locator(".box").bounding_box()
    assert img["width"] > 100 and 0 < box["width"] < img["width"]
    # the box drawn holds the centre of one nucleus, in the field's pixels
    scale = field.shape[1] / img["width"]
    x0, y0 = (box["x"] - img["x"]) * scale, (box["y"] - img["y"]) * scale
    x1, y1 = x0 + box["width"] * scale, y0 + box["height"] * scale
    assert any(x0 <= cx <= x1 and y0 <= cy <= y1 for cy, cx in centres)
    page.locator("#picker-classes button").first.click()
    with page.expect_download() as download:
        page.locator("#download").click()
    rows = open(download.value.path(), encoding="utf-8").read().splitlines()
    assert rows[1].startswith('"field0.png#') and events == []
    page.close()
    # before its image has loaded (here: never), the view already has the
    # field's shape; it was 0 px high (20 px: a broken image's icon)
    for shown in (out / "fields").glob("*.jpg"):
        shown.unlink()
    page, _ = _open(browser, out / "index.html")
    page.locator(".grid .cell").first.click()
    shown = page.locator("#field-view").bounding_box()
    assert shown["width"] > 100 and shown["height"] == pytest.approx(
        shown["width"] * field.shape[0] / field.shape[1], abs=2)
    page.close()
