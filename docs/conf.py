"""Sphinx configuration for leukosk."""

import sys
from pathlib import Path

import leukosk

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _generate  # noqa: E402

# The CLI reference (from the argument parsers) and the provenance table (from
# results/*.json), written before the pages are read.
_generate.write_all()
# |ID:acc|, |ID:cite| etc. of every result record, on every page.
rst_prolog = (Path(__file__).resolve().parent / "_generated"
              / "results_substitutions.inc").read_text(encoding="utf-8")


def setup(app):
    _generate.setup(app)  # the ``results`` directive

project = "leukosk"
author = "leukosk developers"
copyright = "2026, leukosk developers"
release = leukosk.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": "/plot_",   # plot_*.py run during the build (CPU-sized)
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
}

autosummary_generate = True
autodoc_default_options = {"inherited-members": False}
numpydoc_show_class_members = False
numpydoc_show_inherited_class_members = False
numpydoc_class_members_toctree = False
# Links to other projects. Each inventory is downloaded at build time; without
# network the build falls back to the small offline inventories in
# _inventories/ (see make_offline_inventories.py there), so it works offline.
_DOCS = {
    "python": "https://docs.python.org/3",
    "numpy": "https://numpy.org/doc/stable",
    "sklearn": "https://scikit-learn.org/stable",
    "torch": "https://docs.pytorch.org/docs/stable",
    "torchvision": "https://docs.pytorch.org/vision/stable",
    "skorch": "https://skorch.readthedocs.io/en/stable",
    "joblib": "https://joblib.readthedocs.io/en/stable",
}
intersphinx_mapping = {
    name: (url, (None, f"_inventories/{name}.inv")) for name, url in _DOCS.items()
}
intersphinx_timeout = 5
numpydoc_xref_param_type = False
nitpicky = False

html_theme = "pydata_sphinx_theme"
html_title = f"leukosk {release}"
html_theme_options = {"navigation_with_keys": False}
exclude_patterns = ["_build", "_generated", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip"]
templates_path = ["_templates"]
