"""Training on several sources: per-source class masks and source balance."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone

from leukosk import VGG19LeukocyteClassifier
from leukosk.classifier._training import weighted_loss
from leukosk.utils._labels import source_class_mask, source_weights


def test_present_classes_mask_each_source_to_its_labels():
    y = np.array(["ig", "neutrophil", "neutrophil", "monocyte"])
    source = np.array(["pbc", "pbc", "raabin", "raabin"])
    mask = source_class_mask("present", source, y, ["ig", "monocyte", "neutrophil"])
    assert mask.tolist() == [[True, False, True], [True, False, True],
                             [False, True, True], [False, True, True]]


def test_a_dict_names_a_sources_classes_and_leaves_others_free():
    classes = ["ig", "monocyte", "neutrophil"]
    mask = source_class_mask({"raabin": ["monocyte", "neutrophil"]},
                             ["pbc", "raabin"], ["ig", "monocyte"], classes)
    assert mask.tolist() == [[True, True, True], [False, True, True]]
    with pytest.raises(ValueError, match="labelled \\['ig'\\].*add them"):
        source_class_mask({"raabin": ["monocyte"]}, ["raabin"], ["ig"], classes)
    with pytest.raises(ValueError, match="not among classes_"):
        source_class_mask({"raabin": ["blast"]}, ["raabin"], ["ig"], classes)


def test_balanced_sources_weigh_the_same_in_total():
    source = np.repeat(["pbc", "raabin"], [300, 100])
    weights = source_weights("balanced", source)
    assert weights[source == "pbc"].sum() == pytest.approx(weights[source == "raabin"].sum())
    assert weights.mean() == pytest.approx(1.0)
    assert source_weights(None, source) is None


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.0, 0.4), st.booleans())
def test_masked_loss_is_cross_entropy_over_the_allowed_classes(seed, smoothing, weighted):
    """Property: an image's masked loss is the plain cross-entropy (and label
    smoothing) of the network restricted to the classes it may be."""
    rng = np.random.default_rng(seed)
    n, k = 5, 6
    logits = torch.as_tensor(rng.normal(0, 3, (n, k)), dtype=torch.float32)
    mask = torch.as_tensor(rng.random((n, k)) < 0.6)
    targets = torch.as_tensor(rng.integers(0, k, n))
    mask[torch.arange(n), targets] = True  # an image's own class is always allowed
    class_weight = torch.as_tensor(rng.uniform(0.5, 2, k), dtype=torch.float32) \
        if weighted else None
    criterion = torch.nn.CrossEntropyLoss(weight=class_weight, label_smoothing=smoothing)
    ones = torch.ones(n)
    got = weighted_loss(criterion, logits, targets, ones, mask)
    expected, norm = 0.0, 0.0
    for i in range(n):
        allowed = torch.nonzero(mask[i])[:, 0]
        sub = torch.nn.CrossEntropyLoss(
            weight=None if class_weight is None else class_weight[allowed],
            label_smoothing=smoothing, reduction="sum")
        target = int(torch.nonzero(allowed == targets[i])[0, 0])
        expected += sub(logits[i, allowed][None], torch.tensor([target]))
        norm += 1.0 if class_weight is None else float(class_weight[targets[i]])
    assert float(got) == pytest.approx(float(expected) / norm, rel=1e-4, abs=1e-5)


def test_a_source_with_one_class_teaches_nothing_against_the_others(tiny, fast):
    """A source that may only hold one class gives zero loss: its look is
    never learnt as evidence against the classes it lacks."""
    X, y = tiny
    only = y == y[0]
    clf = VGG19LeukocyteClassifier(**dict(fast, classes=np.unique(y), max_epochs=2,
                                          source_classes="present"))
    clf.fit(X[only], y[only], source=np.repeat("single", only.sum()))
    assert all(epoch["train_loss"] == 0 for epoch in clf.history_)
    unmasked = clone(clf).set_params(source_classes=None)
    unmasked.fit(X[only], y[only], source=np.repeat("single", only.sum()))
    assert unmasked.history_[-1]["train_loss"] > 0


def test_sources_reach_the_loss_on_arrays_and_files(tiny, fast, tmp_path):
    from PIL import Image

    X, y = tiny
    source = np.where(np.arange(len(y)) % 2, "a", "b")
    paths = []
    for i, image in enumerate(X):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(image).save(paths[-1])
    params = dict(fast, source_classes="present", source_weight="balanced")
    on_arrays = VGG19LeukocyteClassifier(**params).fit(X, y, source=source)
    on_files = VGG19LeukocyteClassifier(**params).fit(paths, y, source=source)
    for clf in (on_arrays, on_files):
        assert np.isfinite(clf.history_[-1]["train_loss"])
        assert clf.predict(X[:2]).shape == (2,)


def test_source_parameters_are_validated_and_cloned(tiny, fast):
    X, y = tiny
    clf = VGG19LeukocyteClassifier(**dict(fast, source_classes="present",
                                          source_weight="balanced"))
    assert clone(clf).get_params()["source_classes"] == "present"
    with pytest.raises(ValueError, match="source_weight"):
        VGG19LeukocyteClassifier(**dict(fast, source_weight="equal")).fit(X, y)
    with pytest.raises(ValueError, match="one source per image"):
        clf.fit(X, y, source=["a"])
