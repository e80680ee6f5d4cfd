"""Hostile folders and crafted model files (issue 24): nothing written outside
``--out``, nothing lost, nothing silently wrong.

Real files, real subprocesses and signals, and model files crafted with the
safetensors API, as an attacker or a careless user would make them.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from leukosk import LeukoskWeights, VGG19LeukocyteClassifier
from leukosk.cli import main
from leukosk.datasets import PBCDataWarning

ROOT = Path(__file__).resolve().parents[1]
#: Class names an attacker picks: a path out of --out, a spreadsheet formula,
#: a terminal escape sequence that retitles the window.
HOSTILE = ("/../../victim/x", "=HYPERLINK(\"http://evil\")", "\x1b]0;owned\x07cell")


def _images(folder, names, seed=0):
    """Small real image files (PNG or JPEG by suffix) under ``folder``."""
    rng = np.random.default_rng(seed)
    for name in names:
        path = Path(folder, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (36, 36, 3), dtype=np.uint8)).save(path)
    return Path(folder)


@pytest.fixture(scope="module")
def hostile_model(tmp_path_factory):
    """A model file whose classes are HOSTILE, trained through the public API."""
    from conftest import FAST, make_images

    X, _ = make_images(n_per_class=4)
    y = np.repeat(HOSTILE, 4)
    path = tmp_path_factory.mktemp("hostile") / "model.safetensors"
    VGG19LeukocyteClassifier(**FAST).fit(X, y).save(path)
    return path


@pytest.fixture(scope="module")
def plain_model(tmp_path_factory):
    """A tiny model of classes 'a' and 'b'."""
    from conftest import FAST, make_images

    X, y = make_images(n_per_class=4, classes=("a", "b"))
    path = tmp_path_factory.mktemp("plain") / "model.safetensors"
    VGG19LeukocyteClassifier(**FAST).fit(X, y).save(path)
    return path


def leukosk(*args, cwd=None, **kwargs):
    """Run the ``leukosk`` command of this checkout in a subprocess."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg",
               **kwargs.pop("env", {}))
    return subprocess.run([sys.executable, "-m", "leukosk", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300, **kwargs)


def _tree(folder):
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*"))


# -- 1-3: writes outside --out, overwritten inputs --------------------------------------

def test_explain_with_hostile_class_names_writes_only_inside_out(hostile_model, tmp_path):
    data = _images(tmp_path / "deep" / "er" / "cells", ["c1.png", "c2.png", "c3.png"])
    out = tmp_path / "deep" / "er" / "out"
    before = _tree(tmp_path)
    run = leukosk("explain", hostile_model, data, "--out", out, "--target", HOSTILE[0])
    assert run.returncode == 0, run.stderr
    created = sorted(set(_tree(tmp_path)) - set(before))
    assert all(p.startswith("deep/er/out") for p in created), created
    assert len(list(out.glob("*_gradcam_*.png"))) == 3
    assert "\x1b" not in run.stdout + run.stderr


def test_predict_refuses_to_overwrite_an_input_image(plain_model, tmp_path):
    _images(tmp_path, ["cellA.png", "cellB.png"])
    (tmp_path / "--output=cellA.png").write_bytes((tmp_path / "cellB.png").read_bytes())
    original = (tmp_path / "cellA.png").read_bytes()
    argv = sorted(p.name for p in tmp_path.glob("*.png"))  # what the shell's *.png gives
    assert argv[0] == "--output=cellA.png"
    run = leukosk("predict", "--model", plain_model, *argv, cwd=tmp_path)
    assert run.returncode == 1, run.stdout
    assert "--output cellA.png is the input cellA.png" in run.stderr
    assert (tmp_path / "cellA.png").read_bytes() == original


def test_predict_refuses_to_overwrite_the_model(plain_model, tmp_path, capsys):
    model = tmp_path / "m.safetensors"
    shutil.copyfile(plain_model, model)
    _images(tmp_path / "cells", ["c.png"])
    assert main(["predict", "--model", str(model), str(tmp_path / "cells"),
                 "--output", str(model)]) == 1
    assert "is the input" in capsys.readouterr().err
    assert model.read_bytes() == plain_model.read_bytes()


def test_explain_writes_one_overlay_per_image_even_when_stems_repeat(plain_model, tmp_path):
    data = _images(tmp_path / "in", ["a/cell1.jpg", "b/cell1.jpg", "cell2.jpg", "cell2.png"])
    out = tmp_path / "out"
    assert main(["explain", str(plain_model), str(data), "--out", str(out)]) == 0
    overlays = sorted(p.name for p in out.glob("*_gradcam_*.png"))
    assert len(overlays) == 4, overlays
    rows = (out / "overlays.csv").read_text().splitlines()[1:]
    assert sorted(row.split(",")[1] for row in rows) == overlays
    assert {row.split(",")[0] for row in rows} == {
        str(data / name) for name in ("a/cell1.jpg", "b/cell1.jpg", "cell2.jpg", "cell2.png")}


# -- 9: the integrity check cannot be skipped ---------------------------------------------

def _rewrite(source, target, change):
    """Copy the model file ``source`` to ``target`` with its metadata changed."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(source), framework="pt") as f:
        metadata, tensors = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}
    change(metadata, tensors)
    save_file(tensors, str(target), metadata=metadata)
    return target


def _swap_and_drop_checksum(metadata, tensors):
    classes = json.loads(metadata["classes"])
    values = classes["values"]
    values[0], values[6] = values[6], values[0]  # basophil <-> neutrophil
    metadata["classes"] = json.dumps(classes)
    del metadata["sha256"]


def test_a_shipped_model_with_swapped_classes_and_no_checksum_is_refused(tmp_path, capsys):
    forged = _rewrite(LeukoskWeights.DEFAULT.path, tmp_path / "model.safetensors",
                      _swap_and_drop_checksum)
    with pytest.raises(ValueError, match="altered after it was saved: its checksum is "
                                         "missing"):
        VGG19LeukocyteClassifier.load(forged)
    from leukosk.datasets._sample import sample_folder

    basophils = sample_folder() / "basophil"
    assert main(["predict", "--model", str(tmp_path), str(basophils)]) == 1
    assert "checksum is missing" in capsys.readouterr().err
