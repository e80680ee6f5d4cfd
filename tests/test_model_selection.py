"""paper_split and stratified_group_split (leukosk/model_selection)."""

import warnings

import numpy as np
import pytest
from conftest import SHARED_PBC
from hypothesis import given, settings
from hypothesis import strategies as st

from leukosk.model_selection import paper_split, stratified_group_split


def test_paper_split_numbers_of_the_full_dataset():
    counts = {"basophil": 1218, "eosinophil": 3117, "erythroblast": 1551,
              "ig": 2895, "lymphocyte": 1214, "monocyte": 1420,
              "neutrophil": 3329, "platelet": 2348}
    y = np.concatenate([[name] * n for name, n in counts.items()])
    train, test = paper_split(y, random_state=0)
    assert len(train) == 8 * 850 == 6800  # 680 iterations x batch 10
    _, per_class = np.unique(y[test], return_counts=True)
    assert set(per_class) == {364}  # Fig. 5's column totals
    assert not set(train) & set(test)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(4, 30), min_size=2, max_size=5),
       st.integers(0, 2**16), st.floats(0.3, 0.8))
def test_paper_split_balances_and_keeps_groups_together(sizes, seed, train_size):
    rng = np.random.default_rng(seed)
    y = np.concatenate([[f"c{k}"] * n for k, n in enumerate(sizes)])
    groups = np.arange(len(y))
    pairs = rng.choice(len(y), size=len(y) // 4, replace=False)
    groups[pairs[1::2]] = groups[pairs[::2][: len(pairs[1::2])]]  # some duplicates,
    train, test = paper_split(y, groups=groups, train_size=train_size,
                              random_state=seed)             # some across classes
    assert not set(groups[train]) & set(groups[test])
    assert not set(train) & set(test)
    kept = np.bincount(np.unique(y[np.r_[train, test]], return_inverse=True)[1])
    assert kept.max() - kept.min() <= 2 * max(np.bincount(groups))


def test_paper_split_is_reproducible_and_checks_arguments():
    y = np.repeat(["a", "b", "c"], [10, 20, 30])
    first = paper_split(y, random_state=3)
    second = paper_split(y, random_state=3)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    with pytest.raises(ValueError, match="train_size"):
        paper_split(y, train_size=1.5)
    with pytest.raises(ValueError, match="n_per_class"):
        paper_split(y, n_per_class=11)
    with pytest.raises(ValueError, match="inconsistent"):
        paper_split(y, groups=np.arange(3))


def test_stratified_group_split():
    y = np.repeat(["a", "b", "c", "d"], 25)
    groups = np.arange(100) // 2
    train, test = stratified_group_split(y, groups=groups, test_size=0.2,
                                         random_state=0)
    assert len(test) == 20 and len(train) == 80
    assert not set(groups[train]) & set(groups[test])
    assert set(np.unique(y[test], return_counts=True)[1]) <= {4, 5, 6}
    with pytest.raises(ValueError, match="test_size"):
        stratified_group_split(y, test_size=0)


@pytest.mark.skipif(not SHARED_PBC.is_dir(), reason="../shared PBC data absent")
def test_splits_on_real_data_have_no_leak(tmp_path):
    from leukosk.datasets import load_pbc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = load_pbc(SHARED_PBC, cache=tmp_path, verbose=False)
    for train, test in (paper_split(data.target, groups=data.groups, random_state=0),
                        stratified_group_split(data.target, groups=data.groups,
                                               random_state=0)):
        assert not set(data.groups[train]) & set(data.groups[test])
    train, test = paper_split(data.target, groups=data.groups, random_state=0)
    assert len(train) == 8 * 510  # 70 % of the 728 lymphocytes here, per class
