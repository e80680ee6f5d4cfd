"""The paper's protocol as one call (leukosk/protocols.py)."""

import numpy as np
import torch
from sklearn.base import clone

from leukosk import RandomReflectRotate, VGG19LeukocyteClassifier
from leukosk.protocols import Protocol, jarjees2022


def test_recipe_matches_the_paper():
    recipe = jarjees2022(random_state=0)
    assert isinstance(recipe, Protocol) and "TELKOMNIKA" in recipe.reference
    clf = recipe.estimator
    assert isinstance(clf, VGG19LeukocyteClassifier)
    params = clf.get_params()
    assert params["weights"] == "IMAGENET1K_V1"
    assert params["image_size"] == 224 and params["max_epochs"] == 10
    assert params["batch_size"] == 10 and params["lr"] == 1e-4
    assert params["head_lr_multiplier"] == 20.0
    assert params["optimizer"] is torch.optim.SGD
    assert params["optimizer__momentum"] == 0.9
    assert params["optimizer__weight_decay"] == 1e-4
    assert isinstance(params["augment"], RandomReflectRotate)
    assert params["augment"].degrees == (0, 360)
    clone(clf)  # a proper scikit-learn estimator


def test_split_is_the_balanced_70_30():
    counts = {"basophil": 1218, "eosinophil": 3117, "erythroblast": 1551,
              "ig": 2895, "lymphocyte": 1214, "monocyte": 1420,
              "neutrophil": 3329, "platelet": 2348}
    y = np.concatenate([[k] * n for k, n in counts.items()])
    train, test = jarjees2022(random_state=0).split(y)
    assert len(train) == 6800 and len(test) == 2912


def test_overrides(tiny):
    X, y = tiny
    recipe = jarjees2022(weights=None, random_state=0, image_size=32, max_epochs=1,
                         verbose=0, device="cpu", module__hidden_units=16)
    clf = recipe.estimator.fit(X, y)
    assert clf.predict(X).shape == (len(X),)


def test_leukosk2026_and_few_shot_recipes_clone_and_round_trip():
    from leukosk.protocols import PROTOCOLS, few_shot_classifier

    for estimator in [make(random_state=0).estimator for make in PROTOCOLS.values()] + [
            few_shot_classifier("DEFAULT")]:
        copy = clone(estimator)
        copy.set_params(**estimator.get_params(deep=True))
        assert clone(copy).get_params()["max_epochs"] == estimator.max_epochs


def test_leukosk2026_is_the_measured_recipe():
    from leukosk.callbacks import OneCycle
    from leukosk.protocols import leukosk2026

    recipe = leukosk2026(random_state=0)
    params = recipe.estimator.get_params()
    assert params["weights"] is None and params["batch_norm"] is True
    assert (params["image_size"], params["module__width"], params["module__crop"]) == \
        (64, 0.25, 0.6)
    assert params["max_epochs"] == 22 and params["optimizer"] is torch.optim.AdamW
    (name, schedule), = params["callbacks"]
    assert isinstance(schedule, OneCycle) and schedule.max_lr == params["lr"] == 2e-3
    assert recipe.split.test_size == 0.2


def test_lab_shift_chain_is_the_documented_one_and_trains(tiny, fast):
    from leukosk import Augmentations, RandomJPEG, RandomScaleCrop
    from leukosk.protocols import lab_shift_augmentations

    augment = lab_shift_augmentations(random_state=0)
    assert isinstance(augment, Augmentations)
    steps = dict(augment.steps)
    assert isinstance(steps["reflect_rotate"], RandomReflectRotate)
    assert isinstance(steps["scale"], RandomScaleCrop) and steps["scale"].scale == (0.45, 1.1)
    assert isinstance(steps["jpeg"], RandomJPEG) and steps["jpeg"].quality == (40, 100)
    assert augment.set_params(colour__hue=0.15).get_params()["colour__hue"] == 0.15
    X, y = tiny
    clf = VGG19LeukocyteClassifier(**fast, augment=augment).fit(X, y)
    assert clone(clf).get_params()["augment__colour__hue"] == 0.15
    assert clf.predict(X).shape == (len(X),)
    # same seed, same augmented batch; the input is left as it was
    before = X.copy()
    a = lab_shift_augmentations(random_state=3).augment(X)
    b = lab_shift_augmentations(random_state=3).augment(X)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(X, before)
    assert not np.array_equal(a, X)
