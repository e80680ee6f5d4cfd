"""Splits that respect the PBC protocol and keep duplicate images together,
and hyperparameter searches on a Dask cluster."""

from ._dask import fit_on_dask
from ._split import (PaperSplit, StratifiedGroupSplit, paper_split,
                     stratified_group_split)

__all__ = ["fit_on_dask", "paper_split", "stratified_group_split", "PaperSplit",
           "StratifiedGroupSplit"]
