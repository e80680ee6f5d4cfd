"""Sphinx configuration for leukosk."""

import leukosk

project = "leukosk"
author = "leukosk developers"
copyright = "2026, leukosk developers"
release = leukosk.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
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
# Cross-references to other projects' objects are plain text until the docs
# site gains intersphinx (its inventories need network at build time).
numpydoc_xref_param_type = False
nitpicky = False

html_theme = "pydata_sphinx_theme"
html_title = f"leukosk {release}"
html_theme_options = {"navigation_with_keys": False}
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip"]
templates_path = ["_templates"]
