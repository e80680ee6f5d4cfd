"""Splits that respect the PBC protocol and keep duplicate images together,
hyperparameter searches on a Dask cluster, and measuring a model on another
lab's images (out of the box and after k-shot adaptation)."""

from ._dask import fit_on_dask
from ._few_shot import few_shot_scores, held_back_gain, score_present_classes
from ._split import PaperSplit, StratifiedGroupSplit, paper_split, stratified_group_split

__all__ = ["fit_on_dask", "paper_split", "stratified_group_split", "PaperSplit",
           "StratifiedGroupSplit", "few_shot_scores", "held_back_gain",
           "score_present_classes"]
