"""save()/load() without pickle, atomic writes (leukosk/io/_model_file.py, leukosk/utils/_files.py)."""

import json

import numpy as np
import pytest
import torch

from leukosk import VGG19LeukocyteClassifier
from leukosk.io import _model_file as _persist


def test_save_load_round_trip(tiny, fast, tmp_path):
    X, y = tiny
    clf = VGG19LeukocyteClassifier(module__dropout=0.3, **fast).fit(X, y)
    path = clf.save(tmp_path / "model.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]
    loaded = VGG19LeukocyteClassifier.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)
    assert loaded.classes_.dtype == clf.classes_.dtype
    assert loaded.get_params()["module__dropout"] == 0.3
    assert loaded.get_params()["image_size"] == 32
    assert len(loaded.history_) == len(clf.history_)
    assert loaded.score(X, y) == clf.score(X, y)


def test_integer_classes_and_overrides(tiny, fast, tmp_path):
    X, _ = tiny
    y = np.repeat([2, 4, 8], 6)
    clf = VGG19LeukocyteClassifier(**fast).fit(X, y)
    loaded = VGG19LeukocyteClassifier.load(clf.save(tmp_path / "m.safetensors"),
                                           device="cpu", verbose=0,
                                           optimizer=torch.optim.Adam)
    np.testing.assert_array_equal(loaded.classes_, [2, 4, 8])
    assert loaded.optimizer is torch.optim.Adam
    loaded.partial_fit(X, y)  # trainable further
    assert len(loaded.history_) == 2


def test_file_is_plain_safetensors_with_json_metadata(tiny, fast, tmp_path):
    from safetensors import safe_open

    X, y = tiny
    path = VGG19LeukocyteClassifier(**fast).fit(X, y).save(tmp_path / "m.safetensors")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        assert "backbone.classifier.6.weight" in f.keys()
    assert meta["format"] == "leukosk-model/1"
    assert json.loads(meta["classes"])["values"] == ["basophil", "eosinophil",
                                                     "platelet"]
    assert "optimizer" in json.loads(meta["not_saved"])


def test_failed_save_keeps_the_old_file(tiny, fast, tmp_path, monkeypatch):
    X, y = tiny
    clf = VGG19LeukocyteClassifier(**fast).fit(X, y)
    path = clf.save(tmp_path / "m.safetensors")
    original = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        clf.save(path)
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_load_rejects_other_files(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(FileNotFoundError):
        VGG19LeukocyteClassifier.load(tmp_path / "absent.safetensors")
    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, str(other))
    with pytest.raises(ValueError, match="not a leukosk model"):
        VGG19LeukocyteClassifier.load(other)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match="not a readable safetensors"):
        VGG19LeukocyteClassifier.load(garbage)


def test_save_before_fit(fast, tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        VGG19LeukocyteClassifier(**fast).save(tmp_path / "m.safetensors")


def test_atomic_path_cleans_up_on_error(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with _persist.atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash while writing")
    assert list(tmp_path.iterdir()) == []
