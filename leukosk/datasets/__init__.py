"""Datasets: the PBC dataset (Acevedo et al. 2020) and its bundled sample."""

from ._cache import CacheWarning
from ._classes import PBC_CLASSES, PBC_COUNTS
from ._fetch import PBC_URL, fetch_pbc
from ._home import get_data_home
from ._pbc import PBCDataWarning, load_pbc
from ._sample import load_pbc_sample, sample_folder

__all__ = ["load_pbc", "fetch_pbc", "load_pbc_sample", "sample_folder", "get_data_home",
           "PBCDataWarning", "CacheWarning", "PBC_CLASSES", "PBC_COUNTS", "PBC_URL"]
