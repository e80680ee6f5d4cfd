"""The review page: one sample's cells, by class, for a technologist to correct.

See :func:`write_review_page`; the page's style and script are in
``_template``.
"""

from ._page import display_names, write_review_page

__all__ = ["write_review_page", "display_names"]
