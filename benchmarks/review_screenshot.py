"""The review page's screenshot in the docs (docs/results/review_page.jpg).

Counts 40 bundled PBC cells (five per class) with the shipped model, opens the
review page in the system's headless Chromium (playwright), moves the least
confident cell of the largest class to another class, and saves the top of
the page as a JPEG.

    python benchmarks/review_screenshot.py [--chromium /usr/bin/chromium]
"""

import argparse
import io
import shutil
import sys
import tempfile
from pathlib import Path

from PIL import Image

from leukosk.cli import main
from leukosk.datasets import sample_folder

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _sample(folder):
    for label in sorted(p for p in sample_folder().iterdir() if p.is_dir()):
        for src in sorted(label.glob("*.jpg"))[:5]:
            shutil.copyfile(src, folder / src.name)


def _screenshot(page_path, chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 1100})
        page.goto(page_path.as_uri())
        page.wait_for_selector(".grid .cell")
        grid = max(page.locator(".grid").all(), key=lambda g: g.locator(".cell").count())
        grid.locator(".cell").first.click()
        other = f'#picker-classes button:not([data-class="{grid.get_attribute("data-class")}"])'
        page.locator(other).nth(3).click()
        png = page.screenshot()
        browser.close()
    return png


def main_(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default=shutil.which("chromium"))
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs"
                                              / "results" / "review_page.jpg"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp, "sample_0042")
        folder.mkdir()
        _sample(folder)
        if main(["count", "default", str(folder), "--out", str(Path(tmp, "count")),
                 "--quiet", "--device", "cpu"]) != 0:
            sys.exit("leukosk count failed")
        png = _screenshot(Path(tmp, "count", "index.html"), args.chromium)
    Image.open(io.BytesIO(png)).convert("RGB").save(args.out, quality=82, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main_()
