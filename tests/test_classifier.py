"""VGG19LeukocyteClassifier behaviour (leukosk/classifier/)."""

import numpy as np
import pytest
import torch
from conftest import assert_same_fit_output
from PIL import Image
from sklearn.exceptions import NotFittedError

from leukosk import VGG19LeukocyteClassifier
from leukosk.nn._vgg import HEAD_PREFIX


def test_fit_predict_proba_score_with_string_labels(tiny, fast):
    X, y = tiny
    clf = VGG19LeukocyteClassifier(**fast).fit(X, y)
    assert list(clf.classes_) == ["basophil", "eosinophil", "platelet"]
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    pred = clf.predict(X)
    assert set(pred) <= set(clf.classes_)
    np.testing.assert_array_equal(pred, clf.classes_[proba.argmax(axis=1)])
    assert 0.0 <= clf.score(X, y) <= 1.0


def test_integer_labels_are_kept(tiny, fast):
    X, _ = tiny
    y = np.repeat([3, 7, 11], 6)
    clf = VGG19LeukocyteClassifier(**fast).fit(X, y)
    np.testing.assert_array_equal(clf.classes_, [3, 7, 11])
    assert set(clf.predict(X)) <= {3, 7, 11}


def test_learns_separable_colours(tiny, fast):
    """From scratch, a (narrow) VGG-19-BN learns three colour classes.

    Without dropout, so that the outcome does not hinge on the dropout masks
    (which differ between CPU and CUDA); it then holds for every seed tried.
    """
    X, y = tiny
    fast.update(batch_norm=True, max_epochs=30, lr=1e-3, batch_size=18,
                head_lr_multiplier=1.0, module__hidden_units=64,
                module__dropout=0.0, optimizer=torch.optim.Adam,
                optimizer__weight_decay=0.0)
    clf = VGG19LeukocyteClassifier(**fast).fit(X, y)
    losses = clf.history_[:, "train_loss"]
    assert losses[-1] < 0.85 * losses[0]
    assert clf.score(X, y) > 0.5  # chance is 1/3


def test_paths_are_decoded_lazily_like_arrays(tiny, fast, tmp_path):
    X, y = tiny
    X = X[:, :32, :32]  # already at image_size: no resize on either path
    paths = []
    for i, image in enumerate(X):
        paths.append(tmp_path / f"cell_{i}.png")
        Image.fromarray(image).save(paths[-1])
    clf = VGG19LeukocyteClassifier(**fast).fit(X, y)
    np.testing.assert_allclose(clf.predict_proba(paths), clf.predict_proba(X),
                               rtol=1e-5, atol=1e-6)
    from_paths = VGG19LeukocyteClassifier(**fast).fit(paths, y)
    assert_same_fit_output(from_paths.predict_proba(X), clf.predict_proba(X))


def test_float_images_match_uint8(tiny, fast):
    X, y = tiny
    clf = VGG19LeukocyteClassifier(**fast).fit(X, y)
    np.testing.assert_allclose(clf.predict_proba(X.astype(np.float32) / 255),
                               clf.predict_proba(X), rtol=1e-4, atol=1e-5)


def test_same_seed_same_model_and_global_rng_untouched(tiny, fast):
    X, y = tiny
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = VGG19LeukocyteClassifier(**fast).fit(X, y).predict_proba(X)
    assert torch.equal(torch.rand(1), before)
    second = VGG19LeukocyteClassifier(**fast).fit(X, y).predict_proba(X)
    assert_same_fit_output(first, second)
    fast["random_state"] = 1
    third = VGG19LeukocyteClassifier(**fast).fit(X, y).predict_proba(X)
    assert not np.allclose(first, third)


def test_validation_fraction_and_given_set(tiny, fast):
    X, y = tiny
    fast["max_epochs"] = 2
    clf = VGG19LeukocyteClassifier(validation=1 / 3, **fast).fit(X, y)
    for key in ("train_loss", "train_acc", "valid_loss", "valid_acc"):
        assert len(clf.history_[:, key]) == 2
    assert sum(clf.history_[-1, "batches", :, "valid_batch_size"]) == 6
    clf = VGG19LeukocyteClassifier(validation=(X[:4], y[:4]), **fast).fit(X, y)
    assert sum(clf.history_[-1, "batches", :, "valid_batch_size"]) == 4
    clf = VGG19LeukocyteClassifier(**fast).fit(X, y)
    assert "valid_loss" not in clf.history_[-1]
    with pytest.raises(ValueError, match="does not know"):
        VGG19LeukocyteClassifier(validation=(X[:2], ["x", "y"]), **fast).fit(X, y)


def test_head_learns_faster_and_biases_skip_l2(tiny, fast):
    X, y = tiny
    clf = VGG19LeukocyteClassifier(**fast).fit(X, y)
    head = {id(p) for n, p in clf.module_.named_parameters()
            if n.startswith(HEAD_PREFIX)}
    for group in clf.optimizer_.param_groups:
        is_head = all(id(p) in head for p in group["params"])
        assert group["lr"] == pytest.approx(1e-4 * (20 if is_head else 1))
        if all(p.ndim == 1 for p in group["params"]):
            assert group["weight_decay"] == 0.0
        else:
            assert group["weight_decay"] == pytest.approx(1e-4)
    assert isinstance(clf.optimizer_, torch.optim.SGD)
    assert clf.optimizer_.defaults["momentum"] == 0.9


def test_freeze_features_trains_only_the_classifier(tiny, fast):
    X, y = tiny
    fast["lr"] = 1e-2
    clf = VGG19LeukocyteClassifier(freeze_features=True, **fast).fit(X, y)
    backbone = clf.module_.backbone
    conv = backbone.features[0].weight.detach().clone()
    head = backbone.classifier[6].weight.detach().clone()
    clf.partial_fit(X, y)
    assert torch.equal(backbone.features[0].weight, conv)
    assert not torch.equal(backbone.classifier[6].weight, head)
    assert all(not p.requires_grad for p in backbone.features.parameters())


def test_other_optimizers_need_no_momentum_change(tiny, fast):
    X, y = tiny
    clf = VGG19LeukocyteClassifier(optimizer=torch.optim.AdamW, **fast).fit(X, y)
    assert isinstance(clf.optimizer_, torch.optim.AdamW)


def test_batch_norm_variant(tiny, fast):
    X, y = tiny
    clf = VGG19LeukocyteClassifier(batch_norm=True, **fast).fit(X, y)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in clf.module_.modules())


def test_device_auto_is_kept_as_parameter(tiny, fast):
    X, y = tiny
    fast["device"] = "auto"
    clf = VGG19LeukocyteClassifier(**fast).fit(X, y)
    assert clf.get_params()["device"] == "auto"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert next(clf.module_.parameters()).device.type == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda(tiny, fast):
    X, y = tiny
    fast["device"] = "cuda"
    with pytest.raises(ValueError, match="device='cuda' was requested but"):
        VGG19LeukocyteClassifier(**fast).fit(X, y)


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_another_device_type_this_machine_lacks_is_a_clear_error(tiny, fast):
    """Not PyTorch's RuntimeError from deep inside the first batch (which the
    command line would take for a bug of leukosk)."""
    X, y = tiny
    fast["device"] = "mps"
    with pytest.raises(ValueError, match="device='mps' was requested but .* device='cpu'"):
        VGG19LeukocyteClassifier(**fast).fit(X, y)


@pytest.mark.parametrize("make, exc, match", [
    (lambda X, y: (X, y[:-1]), ValueError, "inconsistent numbers"),
    (lambda X, y: (X, np.full(len(y), "basophil")), ValueError, "single class"),
    (lambda X, y: (X, np.linspace(0, 1, len(y))), ValueError, "Unknown label type"),
    (lambda X, y: (X[..., :1], y), ValueError, "grayscale"),
    (lambda X, y: (X[:0], y[:0]), ValueError, "empty"),
    (lambda X, y: (X, None), ValueError, "y is required"),
    (lambda X, y: (["/no/such/cell.jpg"] * len(y), y), ValueError, "do not exist"),
])
def test_bad_input_to_fit(tiny, fast, make, exc, match):
    X, y = make(*tiny)
    with pytest.raises(exc, match=match):
        VGG19LeukocyteClassifier(**fast).fit(X, y)


def test_bad_parameters(tiny, fast):
    X, y = tiny
    with pytest.raises(ValueError, match="image_size"):
        VGG19LeukocyteClassifier(**{**fast, "image_size": 16}).fit(X, y)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        VGG19LeukocyteClassifier(resume=True, **fast).fit(X, y)
    with pytest.raises(ValueError, match=r"'validation'.*range \(0.0, 1.0\)"):
        VGG19LeukocyteClassifier(validation=1.5, **fast).fit(X, y)
    with pytest.raises(ValueError, match="not a torch device"):
        VGG19LeukocyteClassifier(**{**fast, "device": "gpu0"}).fit(X, y)


def test_predict_before_fit_and_unknown_labels_in_score(tiny, fast):
    X, y = tiny
    clf = VGG19LeukocyteClassifier(**fast)
    for method in (clf.predict, clf.predict_proba):
        with pytest.raises(NotFittedError):
            method(X)
    clf.fit(X, y)
    with pytest.raises(ValueError, match=r"\['Platelet'\].*known classes_"):
        clf.score(X[:1], ["Platelet"])
    with pytest.raises(ValueError, match="shape"):
        clf.predict(X[0])
