"""Train/test splits for PBC: the paper's protocol, and duplicate-aware ones.

Every split here takes ``groups`` (``load_pbc(...).groups``: one id per set
of byte-identical files) and never puts two members of a group on different
sides, so a test image never has an identical twin in training.
"""

import numbers
from fractions import Fraction

import numpy as np
from sklearn.model_selection import BaseCrossValidator, StratifiedGroupKFold
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_consistent_length, column_or_1d

__all__ = ["paper_split", "stratified_group_split", "PaperSplit",
           "StratifiedGroupSplit"]


def _check(y, groups):
    y = column_or_1d(y)
    groups = np.arange(len(y)) if groups is None else column_or_1d(groups)
    check_consistent_length(y, groups)
    if len(y) == 0:
        raise ValueError("y is empty.")
    return y, groups


def _take_groups(order, sizes, quota):
    """Groups from ``order`` until their images reach ``quota``."""
    taken, count = [], 0
    for group in order:
        if count >= quota:
            break
        taken.append(group)
        count += sizes[group]
    return taken


def paper_split(y, *, groups=None, train_size=0.7, n_per_class=None,
                random_state=None):
    """The train/test protocol of Jarjees et al. (2022), as its numbers imply.

    The paper states 10 epochs and 6,800 iterations, i.e. 680 iterations of
    batch 10 per epoch: 6,800 training images. Its confusion matrix (Fig. 5)
    has about 364 test images per class (2,908 in all). Both follow from
    MATLAB's ``splitEachLabel`` after balancing: every class cut to the size
    of the smallest (1,214 lymphocytes in the full PBC), then 70 % of each
    class for training (850 x 8 = 6,800) and 30 % for testing (364 x 8 =
    2,912). This function does exactly that, at random, per class.

    Parameters
    ----------
    y : array-like of shape (n,)
        Class labels.
    groups : array-like of shape (n,), default=None
        Duplicate group of each image (``load_pbc(...).groups``); members of a
        group are drawn, and assigned to a side, together.
    train_size : float, default=0.7
        Fraction of each balanced class used for training.
    n_per_class : int, default=None
        Images kept per class; default the smallest class's count.
    random_state : None, int or RandomState, default=None

    Returns
    -------
    train, test : ndarray of int
        Indices into ``y``. Images beyond each class's quota are in neither.

    Examples
    --------
    >>> import numpy as np
    >>> from leukosk.model_selection import paper_split
    >>> y = np.array(["a"] * 20 + ["b"] * 10)
    >>> train, test = paper_split(y, random_state=0)
    >>> np.unique(y[train], return_counts=True)[1], np.unique(y[test], return_counts=True)[1]
    (array([7, 7]), array([3, 3]))
    """
    y, groups = _check(y, groups)
    if not isinstance(train_size, numbers.Real) or not 0 < train_size < 1:
        raise ValueError(f"train_size={train_size!r} must lie strictly between 0 and 1.")
    rng = check_random_state(random_state)
    classes, counts = np.unique(y, return_counts=True)
    quota = int(counts.min()) if n_per_class is None else int(n_per_class)
    if quota < 2 or quota > counts.min():
        raise ValueError(f"n_per_class={quota}: must be between 2 and the smallest "
                         f"class size ({int(counts.min())}).")
    side = {}  # group -> "train" / "test", shared across classes
    selected = np.zeros(len(y), dtype=bool)  # chosen by their own class's quota
    for label in classes:
        members = np.flatnonzero(y == label)
        ids, sizes = np.unique(groups[members], return_counts=True)
        sizes = dict(zip(ids.tolist(), sizes.tolist()))
        chosen = _take_groups(rng.permutation(ids).tolist(), sizes, quota)
        selected[members[np.isin(groups[members], chosen)]] = True
        n_train = round(train_size * sum(sizes[g] for g in chosen))
        have = sum(sizes[g] for g in chosen if side.get(g) == "train")
        free = [g for g in chosen if g not in side]
        to_train = set(_take_groups(free, sizes, n_train - have))
        side.update({g: "train" if g in to_train else "test" for g in free})
    assigned = np.array([side.get(g, "") for g in groups.tolist()])
    return (np.flatnonzero(selected & (assigned == "train")),
            np.flatnonzero(selected & (assigned == "test")))


def _folds(test_size, y):
    """(n_splits, n_test_folds): ``test_size`` as a fraction k/n, n at most 20
    and at most the smallest class's size (so that every fold has each class)."""
    smallest = int(np.unique(y, return_counts=True)[1].min())
    fraction = Fraction(test_size).limit_denominator(max(2, min(20, smallest)))
    if fraction.numerator == 0 or fraction.numerator == fraction.denominator:
        fraction = Fraction(1, 2)
    return fraction.denominator, fraction.numerator


def stratified_group_split(y, *, groups=None, test_size=0.2, random_state=None):
    """One stratified train/test split that keeps each group on one side.

    :class:`sklearn.model_selection.StratifiedGroupKFold` with ``n`` folds,
    of which ``k`` form the test set, where ``k/n`` is ``test_size`` as a
    fraction with ``n`` at most 20 (and at most the smallest class's size):
    0.2 is 1 fold of 5, 0.3 is 3 of 10, 0.75 is 3 of 4. Use it for an 80/20
    split of PBC that keeps byte-identical duplicates together.

    Parameters
    ----------
    y : array-like of shape (n,)
    groups : array-like of shape (n,), default=None
        Duplicate groups (``load_pbc(...).groups``); ``None``: every image alone.
    test_size : float, default=0.2
    random_state : None, int or RandomState, default=None

    Returns
    -------
    train, test : ndarray of int

    Examples
    --------
    >>> import numpy as np
    >>> from leukosk.model_selection import stratified_group_split
    >>> y = np.repeat(["a", "b"], 10)
    >>> groups = np.arange(20) // 2  # pairs of identical images
    >>> train, test = stratified_group_split(y, groups=groups, random_state=0)
    >>> len(train), len(test), set(groups[train]) & set(groups[test])
    (16, 4, set())
    """
    y, groups = _check(y, groups)
    if not isinstance(test_size, numbers.Real) or not 0 < test_size < 1:
        raise ValueError(f"test_size={test_size!r} must lie strictly between 0 and 1.")
    n_splits, n_test = _folds(test_size, y)
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True,
                              random_state=random_state)
    folds = cv.split(np.zeros(len(y)), y, groups)
    test = np.sort(np.concatenate([next(folds)[1] for _ in range(n_test)]))
    train = np.setdiff1d(np.arange(len(y)), test)
    return train, test


class _OneSplit(BaseCrossValidator):
    """A single train/test split usable as ``cv=`` and as a function.

    ``split(X, y, groups)`` yields one ``(train, test)`` pair (scikit-learn's
    splitter protocol, so ``GridSearchCV(..., cv=splitter)`` works);
    ``splitter(y, groups=...)`` returns that pair directly.
    """

    __metadata_request__split = {"groups": True}

    def get_n_splits(self, X=None, y=None, groups=None):
        """Always 1."""
        return 1

    def split(self, X=None, y=None, groups=None):
        """Yield the one ``(train, test)`` pair of indices."""
        if y is None:
            raise ValueError(f"{type(self).__name__} needs y (the labels) to stratify.")
        yield self(y, groups=groups)

    def _iter_test_indices(self, X=None, y=None, groups=None):  # pragma: no cover
        raise NotImplementedError("split() is overridden")


class StratifiedGroupSplit(_OneSplit):
    """:func:`stratified_group_split` as a scikit-learn splitter.

    Parameters
    ----------
    test_size : float, default=0.2
    random_state : None, int or RandomState, default=None

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import cross_val_score
    >>> from sklearn.dummy import DummyClassifier
    >>> from leukosk.model_selection import StratifiedGroupSplit
    >>> y = np.repeat(["a", "b"], 10)
    >>> cv = StratifiedGroupSplit(test_size=0.2, random_state=0)
    >>> cross_val_score(DummyClassifier(), np.zeros((20, 1)), y, cv=cv).shape
    (1,)
    >>> [len(part) for part in cv(y)]
    [16, 4]
    """

    def __init__(self, test_size=0.2, random_state=None):
        self.test_size = test_size
        self.random_state = random_state

    def __call__(self, y, groups=None):
        return stratified_group_split(y, groups=groups, test_size=self.test_size,
                                      random_state=self.random_state)


class PaperSplit(_OneSplit):
    """:func:`paper_split` (Jarjees et al. 2022) as a scikit-learn splitter.

    Images beyond each class's quota are in neither set.

    Parameters
    ----------
    train_size : float, default=0.7
    n_per_class : int, default=None
    random_state : None, int or RandomState, default=None

    Examples
    --------
    >>> import numpy as np
    >>> from leukosk.model_selection import PaperSplit
    >>> y = np.array(["a"] * 20 + ["b"] * 10)
    >>> train, test = next(PaperSplit(random_state=0).split(None, y))
    >>> len(train), len(test)
    (14, 6)
    """

    def __init__(self, train_size=0.7, n_per_class=None, random_state=None):
        self.train_size = train_size
        self.n_per_class = n_per_class
        self.random_state = random_state

    def __call__(self, y, groups=None):
        return paper_split(y, groups=groups, train_size=self.train_size,
                           n_per_class=self.n_per_class, random_state=self.random_state)
