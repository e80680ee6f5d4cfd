"""Datasets: the bundled sample of PBC (Acevedo et al. 2020)."""

from ._sample import load_pbc_sample

__all__ = ["load_pbc_sample"]
