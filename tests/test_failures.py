"""The command line under fault injection: nothing lost, one clear line (issue 13, items 2, 3, 9)."""

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import pytest

from leukosk import VGG19LeukocyteClassifier
from leukosk.cli import main
from leukosk.datasets import CacheWarning

TINY = ["--weights", "none", "--image-size", "32", "--epochs", "1", "--batch-size", "4",
        "--hidden-units", "16", "--width", "0.25", "--device", "cpu", "--seed", "0",
        "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model folder (trained once for the module) and its bytes."""
    from conftest import make_images
    from PIL import Image

    root = tmp_path_factory.mktemp("failures")
    data = root / "data"
    X, y = make_images(n_per_class=3)
    for i, (image, label) in enumerate(zip(X, y)):
        (data / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(data / label / f"{i}.png")
    out = root / "model"
    assert main(["train", str(data), "--out", str(out)] + TINY) == 0
    return data, out, (out / "model.safetensors").read_bytes()


def _one_line_error(capsys, command, *fragments):
    err = capsys.readouterr().err
    assert err.startswith(f"leukosk {command}: error: "), err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


@pytest.mark.parametrize("lr", ["nan", "inf", "-1"])
def test_non_finite_lr_is_a_usage_error(trained, tmp_path, capsys, lr):
    data, _, _ = trained
    with pytest.raises(SystemExit) as info:
        main(["train", str(data), "--out", str(tmp_path), "--lr", lr] + TINY)
    assert info.value.code == 2
    assert "finite, non-negative" in capsys.readouterr().err


def test_diverging_training_saves_nothing(trained, tmp_path, capsys):
    data, _, _ = trained
    out = tmp_path / "m"
    args = ["train", str(data), "--out", str(out), "--lr", "1e9", "--batch-norm"] + TINY
    assert main(args) == 1
    _one_line_error(capsys, "train", "became", "smaller learning rate")
    assert not (out / "model.safetensors").exists()


def test_out_that_is_a_file_is_refused_before_training(trained, tmp_path, capsys):
    data, _, _ = trained
    blocker = tmp_path / "model"
    blocker.write_text("not a folder")
    start = time.perf_counter()
    assert main(["train", str(data), "--out", str(blocker)] + TINY) == 1
    assert time.perf_counter() - start < 5
    _one_line_error(capsys, "train", "is a file")


def _copy_model(trained, tmp_path):
    _, out, data = trained
    copy = tmp_path / "model"
    copy.mkdir()
    (copy / "model.safetensors").write_bytes(data)
    return copy


def _tamper(path, change):
    """Rewrite the JSON metadata of a model file with ``change(metadata)``."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    change(metadata, tensors)
    save_file(tensors, str(path), metadata=metadata)


def _reversed_classes(metadata, tensors):
    classes = json.loads(metadata["classes"])
    classes["values"] = classes["values"][::-1]
    metadata["classes"] = json.dumps(classes)


def _nan_weights(metadata, tensors):
    for value in tensors.values():
        if value.is_floating_point():
            value.fill_(float("nan"))
            break
    from leukosk.io._model_file import _digest

    metadata["sha256"] = _digest(tensors, metadata)  # consistent, but NaN


@pytest.mark.parametrize("damage, fragments", [
    (lambda p: p.write_bytes(b""), ["not a readable safetensors model file"]),
    (lambda p: p.write_bytes(p.read_bytes()[:1000]), ["truncated or corrupt"]),
    (lambda p: _tamper(p, _reversed_classes), ["altered after it was saved"]),
    (lambda p: _tamper(p, lambda m, t: m.update(config="{not json")), ["altered"]),
    (lambda p: _tamper(p, _nan_weights), ["NaN or infinite weights"]),
])
def test_damaged_model_files_give_one_line(trained, tmp_path, capsys, damage, fragments):
    data, _, _ = trained
    model = _copy_model(trained, tmp_path)
    damage(model / "model.safetensors")
    assert main(["predict", "--model", str(model), str(data)]) == 1
    _one_line_error(capsys, "predict", *fragments)


def test_newer_leukosk_version_warns(trained, tmp_path, capsys):
    from leukosk.io._model_file import _digest

    data, _, _ = trained
    model = _copy_model(trained, tmp_path)

    def newer(metadata, tensors):
        metadata["leukosk_version"] = "99.0"
        metadata["sha256"] = _digest(tensors, metadata)

    _tamper(model / "model.safetensors", newer)
    with pytest.warns(UserWarning, match="saved by leukosk 99.0, newer than"):
        assert main(["predict", "--model", str(model), str(data)]) == 0


def test_full_disk_at_save_keeps_the_old_model(trained, tmp_path, capsys, monkeypatch):
    import errno

    import safetensors.torch

    data, _, original = trained
    model = _copy_model(trained, tmp_path)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    assert main(["train", str(data), "--out", str(model)] + TINY) == 1
    _one_line_error(capsys, "train", "No space left on device")
    assert (model / "model.safetensors").read_bytes() == original
    assert sorted(p.name for p in model.iterdir()) == ["model.safetensors"]


def test_unwritable_cache_and_no_cache(trained, tmp_path, capsys, monkeypatch):
    data, _, _ = trained
    blocked = tmp_path / "home"
    blocked.write_text("a file where the data folder should be")
    monkeypatch.setenv("LEUKOSK_DATA", str(blocked))
    with pytest.warns(CacheWarning, match="cannot create leukosk's data folder"):
        assert main(["train", str(data), "--out", str(tmp_path / "a")] + TINY) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # --no-cache: the data folder is not touched
        assert main(["train", str(data), "--out", str(tmp_path / "b"), "--no-cache"]
                    + TINY) == 0


_LONG = ["--epochs", "200", "--image-size", "32", "--batch-size", "2", "--weights", "none",
         "--hidden-units", "16", "--width", "0.25", "--device", "cpu", "--seed", "0"]


def test_ctrl_c_during_train_keeps_the_old_model_and_exits_130(trained, tmp_path):
    data, _, original = trained
    model = _copy_model(trained, tmp_path)
    ckpt = tmp_path / "ckpt"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "leukosk", "train", str(data), "--out", str(model),
         "--checkpoint", str(ckpt), "--quiet"] + _LONG,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
        # a shell's background job ignores SIGINT, and so would the child: restore
        # the default, as in a terminal, so that Python turns it into KeyboardInterrupt
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while not (ckpt / "checkpoint.json").exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "interrupted" in err and f"checkpoint in {ckpt} holds epoch" in err, err
    assert "Traceback" not in err
    assert (model / "model.safetensors").read_bytes() == original
    resumed = VGG19LeukocyteClassifier(resume=True, checkpoint_dir=ckpt, max_epochs=1,
                                       weights=None, image_size=32, verbose=0,
                                       module__hidden_units=16, module__width=0.25)
    from leukosk.datasets import load_pbc
    same = load_pbc(data, verbose=False)  # the images the command trained on
    assert len(resumed.fit(same.images, same.target).history_) >= 1


def test_ctrl_c_during_predict_exits_130(trained, monkeypatch, capsys):
    data, out, _ = trained

    def interrupted(self, X):
        raise KeyboardInterrupt

    monkeypatch.setattr(VGG19LeukocyteClassifier, "predict_proba", interrupted)
    assert main(["predict", "--model", str(out), str(data)]) == 130
    model_line, last = capsys.readouterr().err.splitlines()
    assert model_line.startswith("model: ")
    assert last == "leukosk predict: interrupted; nothing was written."


def test_unexpected_errors_are_one_line_too(trained, monkeypatch, capsys):
    data, out, _ = trained

    def bug(self, X):
        raise KeyError("oops")

    monkeypatch.setattr(VGG19LeukocyteClassifier, "predict_proba", bug)
    assert main(["predict", "--model", str(out), str(data)]) == 1
    model_line, last = capsys.readouterr().err.splitlines()
    assert "unexpected error (KeyError)" in last and "LEUKOSK_TRACEBACK=1" in last


def test_damaged_checkpoint_on_resume_is_one_line(trained, tmp_path, capsys):
    data, _, _ = trained
    ckpt = tmp_path / "ckpt"
    args = ["train", str(data), "--out", str(tmp_path / "m"), "--checkpoint", str(ckpt)]
    assert main(args + TINY) == 0
    (params,) = ckpt.glob("epoch-*/params.safetensors")
    params.write_bytes(b"")
    assert main(args + ["--resume"] + TINY) == 1
    _one_line_error(capsys, "train", "incomplete or damaged")


def test_explain_writes_one_overlay_per_image(trained, tmp_path, capsys):
    data, out, _ = trained
    target = tmp_path / "cams"
    assert main(["explain", str(out), str(data), "--out", str(target)]) == 0
    written = sorted(target.glob("*_gradcam_*.png"))
    assert len(written) == 9
    assert "9 Grad-CAM overlay(s)" in capsys.readouterr().out


def test_count_writes_table_intervals_referrals_and_chart(trained, tmp_path, capsys):
    from conftest import make_images
    from PIL import Image

    data, out, _ = trained
    calibration = tmp_path / "calibration"
    X, y = make_images(n_per_class=8, seed=5)
    for i, (image, label) in enumerate(zip(X, y)):
        (calibration / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(calibration / label / f"{i}.png")
    target = tmp_path / "count"
    folder = data / "basophil"
    assert main(["count", str(out), str(folder), "--out", str(target),
                 "--calibration", str(calibration), "--coverage", "0.9"]) == 0
    document = json.loads((target / "count.json").read_text())
    assert document["n_cells"] == 3 and sum(r["count"] for r in document["table"]) == 3
    for row in document["table"]:
        assert row["ci_low"] <= row["percent"] <= row["ci_high"]
    assert document["interval"] == "Wilson score" and "MAPIE" in document["referral"]
    assert (target / "count.png").is_file() and (target / "referred.csv").is_file()
    rows = (target / "count.csv").read_text().splitlines()
    assert rows[0] == "class,count,percent,ci_low,ci_high" and len(rows) == 4
    assert "3 cells;" in capsys.readouterr().out
    assert main(["count", str(out), str(tmp_path / "absent"), "--out", str(target)]) == 1
    _one_line_error(capsys, "count", "no such image or folder")
