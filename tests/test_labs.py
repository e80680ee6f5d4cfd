"""The cross-lab evaluation: one table, each lab before and after a review."""

import csv

import numpy as np
import pytest
from conftest import FAST, make_images
from PIL import Image

from leukosk import VGG19LeukocyteClassifier
from leukosk.labs import COLUMNS, LabTable, evaluate_labs

CLASSES = ("basophil", "eosinophil", "platelet")


def yellow(X):
    return np.clip(X.astype(float) * [1.0, 0.9, 0.5] * 0.7 + 40, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    X, y = make_images(n_per_class=10, classes=CLASSES, size=32, seed=0)
    path = tmp_path_factory.mktemp("labs") / "model.safetensors"
    clf = VGG19LeukocyteClassifier(**dict(FAST, batch_norm=True, max_epochs=3)).fit(X, y)
    clf.lab_shift_threshold_, clf.lab_shift_unsure_threshold_ = 0.5, 0.9
    return clf.save(path)


@pytest.fixture(scope="module")
def table(model):
    home = make_images(n_per_class=8, classes=CLASSES, size=32, seed=1)
    away = make_images(n_per_class=10, classes=CLASSES[:2], size=32, seed=2)
    return evaluate_labs({"home": home, "away": (yellow(away[0]), away[1])}, model,
                         k=3, n_draws=2, max_epochs=1, tta=False, device="cpu")


def test_one_row_per_lab_with_every_column(table):
    assert [row["lab"] for row in table.rows] == ["home", "away"] and len(table) == 2
    for row in table.rows:
        assert set(row) == set(COLUMNS)
    home, away = table["home"], table["away"]
    assert (home["n_images"], home["n_classes"], away["n_images"], away["n_classes"]) == \
        (24, 3, 20, 2)
    for row in (home, away):
        for key in ("accuracy_8", "accuracy", "balanced_accuracy", "called_absent",
                    "before_8", "after_8", "after_8_min", "before", "after"):
            assert 0 <= row[key] <= 1, (key, row[key])
        # choosing among the classes present never loses a cell the plain answer got
        assert row["accuracy"] >= row["accuracy_8"]
        assert row["after_8_min"] <= row["after_8"]
        assert row["reviews"] == 2 and 0 <= row["kept"] <= 2
        assert isinstance(row["lab_shift"], bool)
    assert home["called_absent"] == 0  # the home lab holds every class
    assert away["lab_shift_score"] > home["lab_shift_score"]
    with pytest.raises(KeyError, match="no lab 'elsewhere'"):
        table["elsewhere"]


def test_reviews_that_kept_the_model_change_nothing(model):
    """A review the held-back check refuses leaves the answers as they were:
    a model that already gets every reviewed cell right is never adapted."""
    X, y = make_images(n_per_class=8, classes=CLASSES, size=32, seed=1)
    start = VGG19LeukocyteClassifier.load(model)
    right = start.predict(X) == y
    table = evaluate_labs({"known": (X[right], y[right])}, model, k=3, n_draws=2,
                          max_epochs=1, tta=False, device="cpu")
    row = table["known"]
    assert row["before_8"] == 1.0 and row["kept"] == 2
    assert row["after_8"] == row["before_8"] and row["after"] == row["before"]


def test_folders_text_and_csv(model, tmp_path):
    X, y = make_images(n_per_class=8, classes=CLASSES, size=32, seed=3)
    for i, (image, label) in enumerate(zip(X, y)):
        (tmp_path / "lab" / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(tmp_path / "lab" / label / f"c{i}.png")
    table = evaluate_labs({"folder": tmp_path / "lab", "few": (X[:9], y[:9])}, model,
                          n_draws=0, device="cpu")
    row = table["folder"]
    assert row["n_images"] == 24 and row["reviews"] is None and row["after_8"] is None
    assert table["few"]["lab_shift"] is None  # under MIN_IMAGES: no verdict
    text = str(table)
    assert text.splitlines()[0].split()[:4] == ["lab", "images", "classes", "8-class"]
    assert "folder" in text and "%" in text
    table.to_csv(tmp_path / "labs.csv")
    with open(tmp_path / "labs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["lab"] for r in rows] == ["folder", "few"] and list(rows[0]) == list(COLUMNS)


def test_bad_input_is_named(model):
    X, y = make_images(n_per_class=3, classes=("basophil", "ig"), size=32)
    with pytest.raises(ValueError, match=r"lab 'x' has classes the model does not know: "
                                         r"\['ig'\]"):
        evaluate_labs({"x": (X, y)}, model, n_draws=0, device="cpu")
    with pytest.raises(ValueError, match="labs: a dict"):
        evaluate_labs([X], model)
    with pytest.raises(ValueError, match="n_draws=-1"):
        evaluate_labs({"x": (X, y)}, model, n_draws=-1)


def test_table_fills_missing_columns():
    table = LabTable([{"lab": "a"}], "m")
    assert table["a"]["after_8"] is None and table.model == "m"
