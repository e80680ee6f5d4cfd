"""Datasets: the PBC dataset (Acevedo et al. 2020) and its bundled sample, and
the image files of unlabelled folders (:func:`list_images`)."""

from ._cache import CacheWarning
from ._classes import PBC_CLASSES, PBC_COUNTS
from ._fetch import PBC_URL, fetch_pbc
from ._files import list_images
from ._home import get_data_home
from ._pbc import PBCDataWarning, load_pbc
from ._sample import load_pbc_sample, sample_folder

__all__ = ["load_pbc", "fetch_pbc", "list_images", "load_pbc_sample", "sample_folder",
           "get_data_home", "PBCDataWarning", "CacheWarning", "PBC_CLASSES", "PBC_COUNTS", "PBC_URL"]
