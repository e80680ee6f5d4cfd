"""Splits that respect the PBC protocol and keep duplicate images together."""

from ._split import paper_split, stratified_group_split

__all__ = ["paper_split", "stratified_group_split"]
