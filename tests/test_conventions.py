"""The conventions skorch and scikit-learn users rely on (issue 14, items 1-3, 5-7, 10)."""

import pickle
import threading

import numpy as np
import pytest
import torch
from skorch.callbacks import EpochScoring
from skorch.dataset import Dataset
from skorch.helper import predefined_split
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from leukosk import NonFiniteLossError, RandomReflectRotate, VGG19LeukocyteClassifier
from leukosk.nn._vgg import HEAD_PREFIX


@pytest.fixture(scope="module")
def fitted():
    """One small fitted classifier shared by the read-only tests below."""
    from conftest import FAST, make_images

    X, y = make_images()
    return VGG19LeukocyteClassifier(**FAST).fit(X, y), X, y


@pytest.mark.parametrize("labels", [np.repeat([3, 7, 11], 6),
                                    np.repeat(["basophil", "eosinophil", "platelet"], 6)])
def test_sklearn_scorers_in_epoch_scoring_see_labels(tiny, fast, labels):
    X, _ = tiny
    fast.update(max_epochs=2, validation=1 / 3, callbacks=[
        ("sk_acc", EpochScoring("accuracy", name="sk_acc", lower_is_better=False)),
        ("sk_train", EpochScoring("accuracy", name="sk_train", on_train=True,
                                  lower_is_better=False))])
    clf = VGG19LeukocyteClassifier(**fast).fit(X, labels)
    np.testing.assert_allclose(clf.history_[:, "sk_acc"], clf.history_[:, "valid_acc"])
    np.testing.assert_allclose(clf.history_[:, "sk_train"], clf.history_[:, "train_acc"])


def test_warm_start_refuses_new_labels_and_keeps_known_ones(tiny, fast):
    X, y = tiny
    clf = VGG19LeukocyteClassifier(warm_start=True, **fast).fit(X, y)
    with pytest.raises(ValueError, match=r"warm_start=True .* new label\(s\) \['neutrophil'\]"):
        clf.fit(X, np.where(y == "platelet", "neutrophil", y))
    keep = y != "platelet"
    clf.fit(X[keep], y[keep])  # a subset of the known labels is fine
    assert list(clf.classes_) == ["basophil", "eosinophil", "platelet"]
    assert clf.predict_proba(X).shape == (len(X), 3)
    assert len(clf.history_) == 2


def test_augment_params_route_to_the_augmenter(tiny, fast):
    X, y = tiny
    clf = VGG19LeukocyteClassifier(augment=RandomReflectRotate(random_state=0), **fast)
    assert clf.get_params()["augment__degrees"] == (0, 360)
    clf.set_params(augment__degrees=(0, 90))
    assert clf.augment.degrees == (0, 90) and "augment__degrees" not in vars(clf)
    clone(clf).set_params(**clf.get_params(deep=True)).fit(X, y)
    search = GridSearchCV(clf, {"augment__p_vertical": [0.0, 1.0]}, cv=2,
                          error_score="raise").fit(X, y)
    assert search.best_estimator_.augment.p_vertical in (0.0, 1.0)


def test_protocol_estimator_round_trips_its_params():
    from leukosk.protocols import jarjees2022

    estimator = jarjees2022(weights=None, random_state=0).estimator
    params = estimator.get_params(deep=True)
    copy = clone(estimator).set_params(**params)
    after = copy.get_params(deep=True)
    for name, value in params.items():  # skorch adds callbacks__* entries of its own
        if not hasattr(value, "get_params"):
            assert after[name] == value, name
    assert copy.augment.get_params() == estimator.augment.get_params()


def _groups(clf):
    head = {id(p) for n, p in clf.module_.named_parameters() if n.startswith(HEAD_PREFIX)}
    return [(all(id(p) in head for p in g["params"]), g["params"][0].ndim > 1, g)
            for g in clf.optimizer_.param_groups]


def test_set_params_on_a_fitted_net_keeps_the_group_rules(fitted):
    clf = pickle.loads(pickle.dumps(fitted[0]))
    clf.set_params(lr=0.01, optimizer__weight_decay=0.5, head_lr_multiplier=3.0)
    for head, decay, group in _groups(clf):
        assert group["lr"] == pytest.approx(0.01 * (3.0 if head else 1.0))
        assert group["weight_decay"] == (0.5 if decay else 0.0)
    assert clf.get_params()["lr"] == 0.01 and clf.head_lr_multiplier == 3.0


def test_partial_fit_classes_is_not_written_to_the_params(tiny, fast):
    X, y = tiny
    clf = VGG19LeukocyteClassifier(**fast)
    clf.partial_fit(X[:6], y[:6], classes=["basophil", "eosinophil", "platelet"])
    assert clf.get_params()["classes"] is None and clone(clf).classes is None
    assert list(clf.classes_) == ["basophil", "eosinophil", "platelet"]
    clf.partial_fit(X, y)
    assert len(clf.history_) == 2


def test_device_is_resolved_into_a_fitted_attribute(fitted):
    clf = fitted[0]
    auto = clone(clf).set_params(device="auto")
    assert auto.get_params()["device"] == "auto"
    assert clf.device_ == "cpu" and clf.get_params()["device"] == "cpu"
    copy = pickle.loads(pickle.dumps(auto.fit(fitted[1], fitted[2])))
    assert copy.get_params()["device"] == "auto"
    assert copy.device_ == ("cuda" if torch.cuda.is_available() else "cpu")


def test_prediction_is_thread_safe_and_leaves_the_global_rng_alone(fitted):
    clf, X, _ = fitted
    auto = pickle.loads(pickle.dumps(clf))
    auto.set_params(device="auto")
    expected = auto.predict_proba(X)
    state = torch.get_rng_state()
    errors, results = [], []

    def predict():
        try:
            for _ in range(5):
                results.append(auto.predict_proba(X))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=predict) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(np.allclose(r, expected, atol=1e-6) for r in results)
    assert torch.equal(torch.get_rng_state(), state)
    assert auto.get_params()["device"] == "auto"


def test_save_and_load_keep_the_augmenter(tiny, fast, tmp_path):
    X, y = tiny
    clf = VGG19LeukocyteClassifier(
        augment=RandomReflectRotate(degrees=(0, 45), random_state=3), **fast).fit(X, y)
    loaded = VGG19LeukocyteClassifier.load(clf.save(tmp_path / "m.safetensors"))
    assert isinstance(loaded.augment, RandomReflectRotate)
    assert loaded.augment.get_params() == clf.augment.get_params()


def test_predefined_split_with_image_arrays_and_labels(tiny, fast):
    X, y = tiny
    fast.update(train_split=predefined_split(Dataset(X[:6], y[:6])))
    clf = VGG19LeukocyteClassifier(**fast).fit(X, y)
    assert np.isfinite(clf.history_[-1, "valid_loss"])
    assert sum(clf.history_[-1, "batches", :, "valid_batch_size"]) == 6


def test_sample_weight_weighs_the_loss(tiny, fast):
    X, y = tiny
    ones = VGG19LeukocyteClassifier(**fast).fit(X, y, sample_weight=np.ones(len(y)))
    plain = VGG19LeukocyteClassifier(**fast).fit(X, y)
    np.testing.assert_allclose(ones.history_[:, "train_loss"],
                               plain.history_[:, "train_loss"], rtol=1e-5)
    only_first = np.where(y == "basophil", 1.0, 0.0)
    weighted = VGG19LeukocyteClassifier(**fast).fit(X, y, sample_weight=only_first)
    assert not np.allclose(weighted.history_[:, "train_loss"],
                           plain.history_[:, "train_loss"])
    with pytest.raises(ValueError, match="sample_weight"):
        VGG19LeukocyteClassifier(**fast).fit(X, y, sample_weight=-only_first)


def test_class_weight_balanced(tiny, fast):
    X, y = tiny
    keep = np.r_[0:6, 6:9, 12:18]  # 6 basophils, 3 eosinophils, 6 platelets
    clf = VGG19LeukocyteClassifier(class_weight="balanced", **fast).fit(X[keep], y[keep])
    np.testing.assert_allclose(clf.class_weight_, [15 / 18, 15 / 9, 15 / 18])
    np.testing.assert_allclose(clf.criterion_.weight.cpu(), clf.class_weight_)


def test_predict_log_proba(fitted):
    clf, X, _ = fitted
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), clf.predict_proba(X),
                               rtol=1e-6)


def test_pickles_carry_versions_and_warn_on_another(fitted):
    from sklearn.exceptions import InconsistentVersionWarning

    state = fitted[0].__getstate__()
    assert state["_sklearn_version"] and state["_leukosk_version"]
    data = pickle.dumps(fitted[0]).replace(
        state["_sklearn_version"].encode(), b"0.0.0"[: len(state["_sklearn_version"])]
        .ljust(len(state["_sklearn_version"]), b"0"))
    with pytest.warns(InconsistentVersionWarning):
        pickle.loads(data)


@pytest.mark.parametrize("lr", [float("nan"), float("inf"), -1.0])
def test_non_finite_or_negative_lr_is_refused_up_front(tiny, fast, lr):
    with pytest.raises(ValueError, match="'lr' parameter .* range \\[0.0, inf\\)"):
        VGG19LeukocyteClassifier(**dict(fast, lr=lr)).fit(*tiny)


def test_divergence_stops_with_epoch_and_batch(tiny, fast):
    fast.update(lr=1e6, optimizer=torch.optim.SGD, max_epochs=3, batch_norm=True)
    with pytest.raises(NonFiniteLossError, match=r"epoch \d+, batch \d+.*smaller learning rate"):
        VGG19LeukocyteClassifier(**fast).fit(*tiny)
