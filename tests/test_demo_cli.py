"""The demo job and the ``leukosk`` command."""

import subprocess
import sys

import numpy as np
import pytest

from leukosk import VGG19LeukocyteClassifier
from leukosk._demo import format_demo_report, run_demo
from leukosk.cli import main
from leukosk.datasets import load_pbc_sample


def test_sample_is_real_pbc(tmp_path):
    sample = load_pbc_sample(image_size=32)
    assert sample.images.shape == (160, 32, 32, 3)
    names, counts = np.unique(sample.target, return_counts=True)
    assert list(names) == ["basophil", "eosinophil", "erythroblast", "ig",
                           "lymphocyte", "monocyte", "neutrophil", "platelet"]
    assert set(counts) == {20}
    assert "CC BY 4.0" in sample.DESCR and "10.17632/snkd93bnjr.1" in sample.DESCR
    paths, target = load_pbc_sample(return_paths=True, return_X_y=True)
    assert all(p.endswith(".jpg") for p in paths)
    assert np.array_equal(target, sample.target)


def test_run_demo_writes_figure_and_model(tmp_path):
    result = run_demo(tmp_path, image_size=32, max_epochs=1, verbose=0,
                      device="cpu")
    assert result["n_train"] == 120 and result["n_test"] == 40
    assert 0.0 <= result["accuracy"] <= 1.0
    assert result["confusion_matrix"].sum() == 40
    assert result["figure"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loaded = VGG19LeukocyteClassifier.load(result["model"])
    assert list(loaded.classes_) == list(result["classes"])
    report = format_demo_report(result)
    assert "Test accuracy on 40 held-out images" in report


def test_cli_demo_and_errors(tmp_path, capsys):
    code = main(["demo", "--out", str(tmp_path), "--epochs", "1",
                 "--image-size", "32", "--quiet", "--device", "cpu"])
    assert code == 0
    assert "Test accuracy" in capsys.readouterr().out
    assert (tmp_path / "confusion_matrix.png").is_file()
    code = main(["demo", "--out", str(tmp_path), "--image-size", "8", "--quiet"])
    assert code == 1
    assert "image_size" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["no-such-command"])
    assert info.value.code == 2


def test_python_dash_m_help():
    out = subprocess.run([sys.executable, "-m", "leukosk", "demo", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "bundled PBC" in out and "--epochs" in out
