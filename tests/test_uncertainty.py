"""Calibration error, scikit-learn's calibration and MAPIE's sets on the classifier (issue 15)."""

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator

from leukosk.uncertainty import (ConformalSets, conformalize, expected_calibration_error,
                                 referred, reliability_curve)


def test_ece_is_zero_when_calibrated_and_measures_overconfidence():
    rng = np.random.default_rng(0)
    n = 20000
    confidence = rng.uniform(0.5, 1.0, n)
    correct = rng.random(n) < confidence  # right exactly as often as it says
    y = np.where(correct, "a", "b")
    proba = np.c_[confidence, 1 - confidence]
    assert expected_calibration_error(y, proba, ["a", "b"]) < 0.01
    sharpened = np.c_[np.minimum(confidence + 0.1, 1), np.maximum(0.9 - confidence, 0)]
    assert expected_calibration_error(y, sharpened, ["a", "b"]) == pytest.approx(0.1, abs=0.02)
    curve = reliability_curve(y, proba, ["a", "b"], n_bins=10)
    filled = curve.count > 0
    assert np.allclose(curve.accuracy[filled], curve.confidence[filled], atol=0.03)
    assert curve.count.sum() == n


@pytest.fixture(scope="module")
def fitted():
    from conftest import FAST, make_images

    from leukosk import VGG19LeukocyteClassifier

    X, y = make_images(n_per_class=16, seed=1)
    clf = VGG19LeukocyteClassifier(**dict(FAST, max_epochs=3)).fit(X[::2], y[::2])
    return clf, X[1::2], y[1::2]


@pytest.mark.parametrize("method", ["temperature", "sigmoid", "isotonic"])
def test_scikit_learn_calibration_of_a_fitted_classifier(fitted, method):
    from sklearn.metrics import log_loss

    clf, X, y = fitted
    calibrated = CalibratedClassifierCV(FrozenEstimator(clf), method=method).fit(X, y)
    proba = calibrated.predict_proba(X)
    assert proba.shape == (len(X), 3) and np.allclose(proba.sum(1), 1)
    np.testing.assert_array_equal(calibrated.classes_, clf.classes_)
    np.testing.assert_array_equal(calibrated.predict(X[:4]).shape, (4,))
    if method == "temperature":  # one scale, fitted by log loss: never worse there
        before = log_loss(y, clf.predict_proba(X), labels=clf.classes_)
        assert log_loss(y, proba, labels=clf.classes_) <= before + 1e-6


def test_mapie_sets_and_stored_thresholds_agree(fitted):
    clf, X, y = fitted
    conformal = conformalize(clf, X, y, confidence_level=[0.8, 0.9])
    _, mapie_sets = conformal.predict_set(X)
    stored = ConformalSets.from_mapie(conformal)
    assert sorted(stored.thresholds) == pytest.approx([0.8, 0.9])
    proba = clf.predict_proba(X)
    for i, level in enumerate((0.8, 0.9)):
        np.testing.assert_array_equal(stored.predict_set(proba, level), mapie_sets[:, :, i])
    coverage = mapie_sets[np.arange(len(y)), np.searchsorted(clf.classes_, y), 1].mean()
    assert coverage >= 0.9 - 1e-9  # on its own calibration images, at least nominal
    with pytest.raises(ValueError, match="no threshold"):
        stored.predict_set(proba, 0.99)


def test_referral_is_any_set_but_one_class():
    sets = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 0, 1]], dtype=bool)
    assert referred(sets).tolist() == [False, True, True, False]


class _Unsorted:
    """A fitted classifier whose ``classes_`` are not sorted: a perfect one,
    whose column for image i is ``X[i, 0]``."""

    _estimator_type = "classifier"

    def __init__(self):
        self.classes_ = np.array(["c", "a", "b"])

    def fit(self, X, y):
        return self

    def predict_proba(self, X):
        proba = np.full((len(X), 3), 0.05)
        proba[np.arange(len(X)), np.asarray(X)[:, 0].astype(int)] = 0.9
        return proba

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(1)]

    def __sklearn_tags__(self):
        from sklearn.base import ClassifierMixin, BaseEstimator

        class _Tagged(ClassifierMixin, BaseEstimator):
            pass
        return _Tagged().__sklearn_tags__()

    def get_params(self, deep=True):
        return {}


def test_conformal_thresholds_of_a_classifier_with_unsorted_classes():
    """Issue 21: MAPIE encodes labels in sorted order while the probabilities
    come in the classifier's; with ``classes=[...]`` unsorted, a perfect
    classifier got the threshold of a useless one (0.95 instead of 0.1)."""
    from leukosk.count import _mapie_sets

    clf = _Unsorted()
    column = np.random.default_rng(0).integers(0, 3, 60)
    X, y = column[:, None].astype(float), clf.classes_[column]
    conformal = conformalize(clf, X, y, confidence_level=[0.9])
    assert ConformalSets.from_mapie(conformal).threshold(0.9) == pytest.approx(0.1)
    sets = _mapie_sets(conformal, X, 0.9, clf.classes_)  # in clf's column order
    np.testing.assert_array_equal(sets, clf.predict_proba(X) > 0.5)
