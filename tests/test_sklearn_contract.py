"""The scikit-learn estimator contract, with image inputs.

scikit-learn's ``parametrize_with_checks`` feeds 2-D tabular ``X``, which an
image classifier rightly rejects; our tags say so (``two_d_array=False``), so
it would run nothing. We therefore run, by hand, the scikit-learn checks that
do not depend on 2-D data, and re-state the data-dependent ones with images
(fit returns self, parameters are not overwritten, read-only memmaps work,
``n_features_in_``-free fitted state).

Deliberately not run: ``check_no_attributes_set_in_init``, because skorch's
``NeuralNet.__init__`` sets ``history_``, ``initialized_`` and
``virtual_params_`` (skorch's design; clone and get/set_params are unaffected,
see ``test_clone_and_param_round_trip``).
"""

import pickle

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import estimator_checks as checks

from leukosk import RandomReflectRotate, VGG19LeukocyteClassifier

API_CHECKS = [
    checks.check_estimator_cloneable,
    checks.check_estimator_repr,
    checks.check_estimators_unfitted,
    checks.check_do_not_raise_errors_in_init_or_set_params,
    checks.check_mixin_order,
    checks.check_parameters_default_constructible,
    checks.check_get_params_invariance,
    checks.check_set_params,
    checks.check_valid_tag_types,
    checks.check_estimator_tags_renamed,
]


@pytest.mark.parametrize("check", API_CHECKS,
                         ids=lambda c: c.__name__)
def test_sklearn_api_checks(check):
    estimator = VGG19LeukocyteClassifier(weights=None, verbose=0)
    check(type(estimator).__name__, estimator)


@pytest.mark.parametrize("check", API_CHECKS + [checks.check_no_attributes_set_in_init],
                         ids=lambda c: c.__name__)
def test_sklearn_api_checks_augmenter(check):
    if check is checks.check_estimators_unfitted:
        pytest.skip("stateless: RandomReflectRotate needs no fit (requires_fit=False)")
    estimator = RandomReflectRotate()
    check(type(estimator).__name__, estimator)


def test_tags_declare_image_input():
    tags = VGG19LeukocyteClassifier().__sklearn_tags__()
    assert tags.estimator_type == "classifier"
    assert tags.input_tags.two_d_array is False


def test_fit_returns_self_and_keeps_params(tiny, fast):
    X, y = tiny
    clf = VGG19LeukocyteClassifier(**fast)
    before = {k: v for k, v in clf.get_params(deep=False).items()}
    assert clf.fit(X, y) is clf
    after = clf.get_params(deep=False)
    for key, value in before.items():
        assert after[key] is value or after[key] == value, key
    public = {k for k in vars(clf) if not k.startswith("_")}
    assert public - set(before) <= {k for k in public if k.endswith("_")}


def test_clone_and_param_round_trip(fast):
    clf = VGG19LeukocyteClassifier(module__dropout=0.25,
                                   optimizer__momentum=0.8, **fast)
    params = clf.get_params()
    assert params["module__dropout"] == 0.25
    assert params["optimizer__momentum"] == 0.8
    twin = clone(clf)
    assert twin.get_params()["module__dropout"] == 0.25
    twin.set_params(module__dropout=0.1, optimizer__momentum=0.5, lr=3e-3,
                    weights=None, head_lr_multiplier=10.0)
    assert twin.get_params()["module__dropout"] == 0.1
    assert twin.get_params()["optimizer__momentum"] == 0.5
    assert clf.get_params()["optimizer__momentum"] == 0.8


def test_module_and_optimizer_params_reach_torch(tiny, fast):
    X, y = tiny
    clf = VGG19LeukocyteClassifier(module__dropout=0.25, optimizer__momentum=0.5,
                                   **fast).fit(X, y)
    dropouts = [m.p for m in clf.module_.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts == [0.25, 0.25]
    assert clf.optimizer_.defaults["momentum"] == 0.5


def test_readonly_memmap_input(tiny, fast, tmp_path):
    X, y = tiny
    path = tmp_path / "X.npy"
    np.save(path, X)
    X_mm = np.load(path, mmap_mode="r")
    clf = VGG19LeukocyteClassifier(**fast).fit(X_mm, y)
    np.testing.assert_allclose(clf.predict_proba(X_mm), clf.predict_proba(X))


def test_pipeline_and_cross_val_score(tiny, fast):
    X, y = tiny
    pipe = make_pipeline(FunctionTransformer(lambda images: images[:, ::-1]),
                         VGG19LeukocyteClassifier(**fast))
    scores = cross_val_score(pipe, X, y, cv=StratifiedKFold(3))
    assert scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1))


def test_grid_search_over_two_parameters(tiny, fast):
    X, y = tiny
    search = GridSearchCV(VGG19LeukocyteClassifier(**fast),
                          {"lr": [1e-4, 1e-3], "head_lr_multiplier": [1.0, 20.0]},
                          cv=StratifiedKFold(2), error_score="raise")
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_estimator_.lr in (1e-4, 1e-3)
    assert search.predict(X).shape == (len(X),)


@pytest.mark.parametrize("dump, load", [
    (pickle.dumps, pickle.loads),
    (lambda obj: obj, lambda obj: obj),  # joblib below
])
def test_pickle_round_trip(tiny, fast, dump, load, tmp_path):
    X, y = tiny
    clf = VGG19LeukocyteClassifier(**{**fast, "device": "auto"}).fit(X, y)
    if dump is pickle.dumps:
        restored = load(dump(clf))
    else:
        joblib.dump(clf, tmp_path / "clf.joblib")
        restored = joblib.load(tmp_path / "clf.joblib")
    assert restored.get_params()["device"] == "auto"
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(restored.classes_, clf.classes_)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a CPU-only machine")
def test_model_pickled_with_cuda_device_loads_on_cpu(tiny, fast):
    """A model pickled on a CUDA machine (device='cuda') predicts on a CPU-only one.

    skorch stores the device with the model; here we mark a CPU-trained model
    as CUDA before pickling, which is what unpickling sees from a GPU machine.
    """
    X, y = tiny
    clf = VGG19LeukocyteClassifier(**fast).fit(X, y)
    expected = clf.predict_proba(X)
    clf.device = "cuda"
    data = pickle.dumps(clf)
    with pytest.warns(Warning, match="CUDA"):
        restored = pickle.loads(data)
    assert str(restored.device) == "cpu"
    np.testing.assert_array_equal(restored.predict_proba(X), expected)
