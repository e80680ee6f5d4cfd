"""The demo job and the ``leukosk`` command."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from leukosk import VGG19LeukocyteClassifier
from leukosk.cli._demo import format_review_report, run_review_demo
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


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo's review loop, with one fine-tuning epoch."""
    out = tmp_path_factory.mktemp("demo")
    return out, run_review_demo(out, max_epochs=1, verbose=0, device="cpu")


def test_review_demo_writes_page_model_and_figure(demo):
    out, result = demo
    assert result["n_cells"] == 80 and result["n_reviewed"] == 80
    assert result["page"] == out / "review" / "index.html"
    assert 0.0 <= result["accuracy"] <= 1.0 and 0.0 <= result["accuracy_shipped"] <= 1.0
    assert result["confusion_matrix"].sum() == 80
    assert result["figure"] == out / "confusion_matrix.png"
    assert result["figure"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (out / "corrections.csv").read_text().splitlines()
    assert rows[0] == "file,model_class,corrected_class" and len(rows) == 81
    loaded = VGG19LeukocyteClassifier.load(result["model"])
    assert list(loaded.classes_) == list(result["classes"])
    report = format_review_report(result)
    assert str(result["page"]) in report and "On the 80 cells of the page" in report


def test_cli_demo_and_errors(tmp_path, capsys, monkeypatch):
    import leukosk.cli._demo as demo_module

    calls = {}

    def quick(out, **kwargs):  # the review loop is tested above; here the wiring
        calls.update(kwargs)
        return _fake_result(Path(out))

    monkeypatch.setattr(demo_module, "run_review_demo", quick)
    assert main(["demo", "--out", str(tmp_path), "--epochs", "2", "--quiet",
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "Classified the 160 bundled PBC images" in out and "review page" in out
    assert calls == {"max_epochs": 2, "random_state": 0, "device": "cpu", "verbose": 0}
    assert (tmp_path / "shipped_confusion_matrix.png").is_file()
    with pytest.raises(SystemExit) as info:
        main(["demo", "--epochs", "0"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["no-such-command"])
    assert info.value.code == 2


def _fake_result(out):
    return {"page": out / "review" / "index.html", "n_cells": 80, "n_referred": 3,
            "n_reviewed": 80, "n_corrected": 5, "accuracy_shipped": 0.9,
            "decision": "adapted: on the 80 reviewed cells, ...",
            "accuracy": 0.95, "macro_f1": 0.95, "fit_seconds": 1.0, "seconds": 2.0,
            "figure": out / "confusion_matrix.png", "model": out / "adapted" /
            "model.safetensors", "classes": np.array(["a"]),
            "confusion_matrix": np.eye(1)}


def test_progress_is_one_line_per_epoch_in_a_log(capsys):
    from conftest import FAST, make_images

    X, y = make_images()
    VGG19LeukocyteClassifier(**dict(FAST, verbose=1, max_epochs=2)).fit(X, y)
    captured = capsys.readouterr()
    assert "\r" not in captured.err  # no redrawn progress bar in a captured stream
    assert len([line for line in captured.out.splitlines()
                if line.strip()[:1].isdigit()]) == 2  # the epoch table


def test_python_dash_m_help():
    out = subprocess.run([sys.executable, "-m", "leukosk", "demo", "--help"],
                         capture_output=True, text=True, check=True).stdout
    out = " ".join(out.split())  # argparse wraps the description
    assert "bundled PBC" in out and "--epochs" in out and "review page" in out
