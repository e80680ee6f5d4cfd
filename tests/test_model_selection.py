"""paper_split and stratified_group_split (leukosk/model_selection)."""

import warnings

import numpy as np
import pytest
from conftest import SHARED_PBC
from hypothesis import given, settings
from hypothesis import strategies as st

from leukosk.datasets import PBC_COUNTS
from leukosk.model_selection import (PaperSplit, StratifiedGroupSplit, paper_split,
                                     stratified_group_split)


def test_paper_split_numbers_of_the_full_dataset():
    counts = PBC_COUNTS
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


@pytest.mark.parametrize("test_size", [0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75, 0.9])
def test_stratified_group_split_honours_test_size(test_size):
    y = np.repeat(["a", "b", "c", "d"], 50)
    groups = np.arange(200) // 2
    train, test = stratified_group_split(y, groups=groups, test_size=test_size,
                                         random_state=0)
    assert abs(len(test) / len(y) - test_size) <= 0.02
    assert len(train) + len(test) == len(y) and not set(groups[train]) & set(groups[test])


def test_the_80_20_split_is_unchanged():
    """The benchmarks' split: the first of 5 StratifiedGroupKFold folds."""
    from sklearn.model_selection import StratifiedGroupKFold

    rng = np.random.default_rng(0)
    y = rng.choice(list("abcde"), 300)
    groups = np.arange(300) // 3
    expected = next(StratifiedGroupKFold(5, shuffle=True, random_state=0).split(
        np.zeros(300), y, groups))[1]
    np.testing.assert_array_equal(
        stratified_group_split(y, groups=groups, test_size=0.2, random_state=0)[1],
        np.sort(expected))


def test_splitters_work_as_cv_in_a_search(tiny, fast):
    from sklearn.model_selection import GridSearchCV, cross_val_score

    from leukosk import VGG19LeukocyteClassifier
    from leukosk.protocols import jarjees2022

    X, y = tiny
    groups = np.arange(len(y)) // 2
    for cv in (StratifiedGroupSplit(test_size=1 / 3, random_state=0),
               PaperSplit(train_size=0.5, random_state=0),
               jarjees2022(weights=None, random_state=0).split):
        assert cv.get_n_splits() == 1
        train, test = next(cv.split(X, y, groups))
        np.testing.assert_array_equal(train, cv(y, groups=groups)[0])
        assert not set(groups[train]) & set(groups[test])
    search = GridSearchCV(VGG19LeukocyteClassifier(**fast), {"lr": [1e-4, 1e-3]},
                          cv=StratifiedGroupSplit(test_size=1 / 3, random_state=0))
    search.fit(X, y, groups=groups)
    assert search.cv_results_["split0_test_score"].shape == (2,)
    scores = cross_val_score(VGG19LeukocyteClassifier(**fast), X, y, groups=groups,
                             cv=PaperSplit(train_size=0.5, random_state=0))
    assert scores.shape == (1,)


def test_score_present_classes_and_few_shot_with_the_classifier(tiny, fast, tmp_path):
    from leukosk import VGG19LeukocyteClassifier
    from leukosk.model_selection import few_shot_scores, score_present_classes

    X, y = tiny
    base = VGG19LeukocyteClassifier(**fast).fit(X, y)
    keep = y != "eosinophil"
    present = score_present_classes(base, X[keep], y[keep])
    assert set(present.y_pred) <= {"basophil", "platelet"}
    proba = base.predict_proba(X[keep])[:, [0, 2]]
    np.testing.assert_array_equal(present.y_pred, np.array(["basophil", "platelet"])[
        proba.argmax(1)])
    with pytest.raises(ValueError, match="does not know"):
        score_present_classes(base, X[:2], ["basophil", "neutrophil"])
    path = base.save(tmp_path / "base.safetensors")
    adapted = VGG19LeukocyteClassifier(weights=path, verbose=0, max_epochs=1,
                                       random_state=0, device="cpu")
    y_lab = np.where(np.arange(len(y)) == 0, "eosinophil", np.where(keep, y, "platelet"))
    scores = few_shot_scores(adapted, X, y_lab, k=2, n_draws=2, random_state=0)
    assert scores.accuracy.shape == (2,) and 0 <= scores.accuracy_mean <= 1
    # one eosinophil only: none to train on, one left to test, still predictable
    assert scores.n_train.tolist() == [4, 4] and scores.n_test.tolist() == [14, 14]
