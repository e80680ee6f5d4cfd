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
                          env=env, capture_output=True, text=True, timeout=900, **kwargs)


def _tree(folder):
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*"))


# -- 1-3: writes outside --out, overwritten inputs --------------------------------------

def test_explain_with_hostile_class_names_writes_only_inside_out(hostile_model, tmp_path,
                                                                 capsys):
    data = _images(tmp_path / "deep" / "er" / "cells", ["c1.png", "c2.png", "c3.png"])
    out = tmp_path / "deep" / "er" / "out"
    before = _tree(tmp_path)
    assert main(["explain", str(hostile_model), str(data), "--out", str(out),
                 "--target", HOSTILE[0]]) == 0
    created = sorted(set(_tree(tmp_path)) - set(before))
    assert all(p.startswith("deep/er/out") for p in created), created
    assert len(list(out.glob("*_gradcam_*.png"))) == 3
    assert "\x1b" not in "".join(capsys.readouterr())


def test_predict_refuses_to_overwrite_an_input_image(plain_model, tmp_path, monkeypatch,
                                                     capsys):
    _images(tmp_path, ["cellA.png", "cellB.png"])
    (tmp_path / "--output=cellA.png").write_bytes((tmp_path / "cellB.png").read_bytes())
    original = (tmp_path / "cellA.png").read_bytes()
    argv = sorted(p.name for p in tmp_path.glob("*.png"))  # what the shell's *.png gives
    assert argv[0] == "--output=cellA.png"
    monkeypatch.chdir(tmp_path)
    assert main(["predict", "--model", str(plain_model), *argv]) == 1
    assert "--output cellA.png is the input cellA.png" in capsys.readouterr().err
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
    from leukosk.datasets import sample_folder

    basophils = sample_folder() / "basophil"
    assert main(["predict", "--model", str(tmp_path), str(basophils)]) == 1
    assert "checksum is missing" in capsys.readouterr().err


# -- 4, 5: the output folder is checked before any work --------------------------------

@pytest.fixture
def locked(tmp_path):
    """chmod a folder in ``tmp_path``; every mode is restored afterwards."""
    changed = []

    def lock(path, mode):
        path.chmod(mode)
        changed.append(path)
    yield lock
    for path in changed:
        path.chmod(0o755)


def _without_root_powers():
    """Run by a child of root: drop the capabilities that make root ignore
    file permissions (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), as an
    ordinary user lacks them."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def unprivileged(*args):
    """``leukosk`` under the permissions an ordinary user has."""
    return leukosk(*args, preexec_fn=_without_root_powers if os.geteuid() == 0 else None)


def test_train_into_a_read_only_folder_is_refused_before_training(tmp_path, locked):
    data = _images(tmp_path / "data", [f"{c}/{i}.png" for c in "ab" for i in range(3)])
    (tmp_path / "locked").mkdir()
    locked(tmp_path / "locked", 0o555)
    run = unprivileged("train", data, "--out", tmp_path / "locked" / "model", "--weights",
                       "none", "--image-size", "32", "--epochs", "1", "--hidden-units",
                       "16", "--width", "0.25", "--device", "cpu", "--no-cache")
    assert run.returncode == 1, run.stderr
    assert "cannot write in" in run.stderr and "Permission denied" in run.stderr
    assert "epoch" not in run.stdout + run.stderr  # nothing trained


def test_out_inside_the_input_folder_is_refused(plain_model, tmp_path, capsys):
    data = _images(tmp_path / "sample", [f"{c}/{i}.png" for c in "ab" for i in range(3)])
    assert main(["count", str(plain_model), str(data), "--out", str(data / "result")]) == 1
    assert "is inside the input" in capsys.readouterr().err
    assert main(["train", str(data), "--out", str(data / "model"), "--weights", "none",
                 "--epochs", "1", "--quiet"]) == 1
    assert "is inside the input" in capsys.readouterr().err
    assert main(["explain", str(plain_model), str(data / "a"), "--out",
                 str(data / "a" / "cams")]) == 1
    assert "is inside the input" in capsys.readouterr().err
    assert _tree(data) == ["a", "a/0.png", "a/1.png", "a/2.png",
                           "b", "b/0.png", "b/1.png", "b/2.png"]


def test_an_output_folder_holding_other_files_is_not_replaced(plain_model, tmp_path, capsys):
    data = _images(tmp_path / "cells", ["c1.png"])
    mine = tmp_path / "documents"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    assert main(["count", str(plain_model), str(data), "--out", str(mine)]) == 1
    assert "holds files this command did not write (thesis.tex)" in capsys.readouterr().err
    assert _tree(mine) == ["thesis.tex"]


def test_count_into_the_folder_above_its_input_keeps_the_input(plain_model, tmp_path,
                                                                 capsys):
    # issue 29, 1: `count s/cells --out s` replaced `s` whole, deleting the images
    data = _images(tmp_path / "s" / "cells", ["c1.png", "c2.png", "c3.png"])
    before = _snapshot(tmp_path / "s")
    assert main(["count", str(plain_model), str(data), "--out", str(tmp_path / "s")]) == 1
    assert "contains the input" in capsys.readouterr().err
    assert _snapshot(tmp_path / "s") == before


def test_explain_into_the_folder_of_its_input_keeps_the_input(plain_model, tmp_path,
                                                               capsys):
    # issue 29, 1: `explain M cams/x.png --out cams` deleted the input overlay
    image = _images(tmp_path / "cams", ["x.png"]) / "x.png"
    before = image.read_bytes()
    assert main(["explain", str(plain_model), str(image), "--out",
                 str(tmp_path / "cams")]) == 1
    assert "contains the input" in capsys.readouterr().err
    assert image.read_bytes() == before


def test_a_file_added_inside_an_earlier_result_is_never_deleted(plain_model, tmp_path,
                                                                capsys):
    # the swap judged ownership by top-level names: a user's file under a
    # name the command writes (its cells/ folder) was lost
    data = _images(tmp_path / "in", ["c1.png"])
    out = tmp_path / "out"
    assert main(["count", str(plain_model), str(data), "--out", str(out)]) == 0
    assert main(["count", str(plain_model), str(data), "--out", str(out)]) == 0
    mine = out / "cells" / "my_notes.txt"
    mine.parent.mkdir(exist_ok=True)
    mine.write_text("mine")
    assert main(["count", str(plain_model), str(data), "--out", str(out)]) == 1
    assert "did not write (cells/my_notes.txt)" in capsys.readouterr().err
    assert mine.read_text() == "mine"
    (out / "count.csv").write_text("edited by hand")  # changed since written
    mine.unlink()
    assert main(["count", str(plain_model), str(data), "--out", str(out)]) == 1
    assert (out / "count.csv").read_text() == "edited by hand"


def test_count_through_a_symbolic_link_writes_into_its_target(plain_model, tmp_path):
    # issue 29, 2: --out LINK failed, replaced the link by a folder, left a
    # staging folder behind
    data = _images(tmp_path / "in", ["c1.png"])
    target = tmp_path / "target"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    for _ in range(2):  # a new result, then one replacing it
        assert main(["count", str(plain_model), str(data), "--out", str(link)]) == 0
        assert link.is_symlink() and (target / "count.csv").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "link", "target"]


# -- 10: an interruption leaves the previous result or the new one ------------------------

_HOSTILE_FILES = ["=HYPERLINK(1).png", "+1.png", "-1.png", "@SUM(1).png"]


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """A folder of noise cells whose names are formulas or not UTF-8; the
    shipped model refers noise to an expert."""
    folder = tmp_path_factory.mktemp("sample") / "=cells"
    _images(folder, ["noise.png"])
    for name in _HOSTILE_FILES:  # the same pixels: referred or not, all alike
        shutil.copyfile(folder / "noise.png", folder / name)
    os.rename(folder / "noise.png", os.fsencode(folder) + b"/cell\xff.png")
    return folder


def _snapshot(folder):
    """Every file under ``folder`` (by relative path) and its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in Path(folder).rglob("*") if p.is_file()}


def test_ctrl_c_while_count_writes_keeps_the_previous_result(sample, tmp_path, capsys,
                                                             monkeypatch):
    import signal

    import leukosk.reports

    out = tmp_path / "count"
    assert main(["count", "default", str(sample), "--out", str(out)]) == 0
    previous = _snapshot(out)
    assert {"count.csv", "count.json", "referred.csv", "count.png", "count.svg",
            "index.html"} <= set(previous)
    assert any(name.startswith("cells/") for name in previous)  # the review page's
    draw = leukosk.reports.plot_differential_count

    def interrupted(count):  # Ctrl-C after the tables, before the chart
        os.kill(os.getpid(), signal.SIGINT)
        return draw(count)

    monkeypatch.setattr(leukosk.reports, "plot_differential_count", interrupted)
    # pytest-xdist's workers ignore SIGINT; a user's shell delivers it as Ctrl-C
    previous_handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert main(["count", "default", str(sample), "--out", str(out),
                     "--confidence", "0.9"]) == 130
    finally:
        signal.signal(signal.SIGINT, previous_handler)
    assert "nothing was written" in capsys.readouterr().err
    assert _snapshot(out) == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["count"]  # no leftovers


def test_names_that_are_not_utf8_or_formulas_are_written_safely(sample, plain_model,
                                                                tmp_path, monkeypatch):
    import csv

    from leukosk.cli import _commands
    from leukosk.uncertainty import ConformalSets

    out = tmp_path / "count"
    monkeypatch.chdir(sample.parent)
    monkeypatch.setattr(_commands, "_conformal_sets",  # sets of every class: all referred
                        lambda *args: ConformalSets({0.95: 1.0}))
    assert main(["count", str(plain_model), sample.name, "--out", str(out)]) == 0
    rows = list(csv.reader((out / "referred.csv").open(encoding="utf-8")))[1:]
    assert sorted(row[0] for row in rows) == sorted(
        ["'=cells/" + n for n in _HOSTILE_FILES] + ["'=cells/cell\\xff.png"])
    document = json.loads((out / "count.json").read_text())
    assert "=cells/cell\\xff.png" in {r["name"] for r in document["referred"]}
    run = leukosk("predict", "--", *sorted(os.listdir(sample)), cwd=sample)
    assert run.returncode == 0, run.stderr
    cells = [row[0] for row in csv.reader(run.stdout.splitlines()[1:])]
    assert sorted(cells) == sorted(["'" + n for n in _HOSTILE_FILES] + ["cell\\xff.png"])


def test_temporary_files_of_killed_writers_are_removed(tmp_path):
    target = tmp_path / "count.csv"
    code = ("import os, signal; from leukosk.io._model_file import atomic_path\n"
            f"with atomic_path({str(target)!r}) as tmp:\n"
            "    tmp.write_text('half')\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    killed = subprocess.run([sys.executable, "-c", code], env=dict(
        os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert killed.returncode == -9
    (leftover,) = tmp_path.iterdir()
    assert leftover.name.startswith(".count.csv.") and leftover.suffix == ".tmp"
    from leukosk.utils._files import atomic_path

    with atomic_path(target) as tmp:
        tmp.write_text("whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["count.csv"]
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# -- 7, 8: numbers and classes are validated before use ----------------------------------

@pytest.mark.parametrize("option, value", [("--coverage", "nan"), ("--confidence", "1"),
                                           ("--confidence", "0"), ("--coverage", "inf")])
def test_confidence_levels_outside_0_1_are_usage_errors(option, value, sample, tmp_path,
                                                        capsys):
    with pytest.raises(SystemExit) as info:
        main(["count", "default", str(sample), "--out", str(tmp_path / "o"), option, value])
    assert info.value.code == 2
    assert "between 0 and 1" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_library_refuses_levels_outside_0_1_and_writes_valid_json():
    from sklearn.dummy import DummyClassifier

    from leukosk.count import differential_count, wilson_interval

    model = DummyClassifier().fit(np.zeros((4, 1)), ["a", "b", "b", "b"])
    for level in (1, 0, float("nan"), 1.5):
        with pytest.raises(ValueError, match="between 0 and 1"):
            differential_count(model, np.zeros((3, 1)), confidence=level)
        with pytest.raises(ValueError, match="between 0 and 1"):
            wilson_interval(1, 3, level)


def test_repeated_classes_are_refused(tiny, fast):
    X, y = tiny
    with pytest.raises(ValueError, match=r"classes names \['basophil'\] more than once"):
        VGG19LeukocyteClassifier(classes=["basophil", "eosinophil", "platelet", "basophil"],
                                 **fast).fit(X, y)


# -- 11, 12: text from files and models is escaped ---------------------------------------

def test_hostile_class_and_file_names_are_escaped_in_csv_and_terminal(hostile_model,
                                                                        tmp_path, capsys):
    import csv

    names = ["\x1b[1A\x1b[2Kcell.png", "=1+2.png"]
    data = _images(tmp_path / "cells", names)
    (data / "\x1b]0;x\x07broken.png").write_bytes(b"")
    out = tmp_path / "count"
    runs = []
    for argv in (["predict", "--model", str(hostile_model), str(data)],
                 ["count", str(hostile_model), str(data), "--out", str(out)]):
        with pytest.warns(PBCDataWarning) as record:
            assert main(argv) == 0
        from leukosk.cli._main import _format_warning

        stdout, stderr = capsys.readouterr()
        stderr += _format_warning(record[0].message, PBCDataWarning)
        assert not any(ch in stdout + stderr for ch in "\x1b\x07"), (stdout, stderr)
        assert "broken.png (empty file)" in stderr
        runs.append(stdout)
    header, *rows = csv.reader(runs[0].splitlines())
    assert sorted(header[2:]) == sorted(["/../../victim/x", "'=HYPERLINK(\"http://evil\")",
                                         "\\x1b]0;owned\\x07cell"])
    assert sorted(Path(row[0]).name for row in rows) == ["=1+2.png", "\\x1b[1A\\x1b[2Kcell.png"]
    classes = [row[0] for row in csv.reader((out / "count.csv").open())][1:]
    assert classes == header[2:]


# -- 15: metadata checked against the tensors, bounded -------------------------------------

def _recheck(metadata, tensors):
    from leukosk.io._model_file import _digest

    metadata["sha256"] = _digest(tensors, metadata)  # a forger recomputes it


def _set_network(**changes):
    def change(metadata, tensors):
        config, network = json.loads(metadata["config"]), json.loads(metadata["network"])
        for key, value in changes.items():
            if key == "image_size":
                config[key] = network[key] = value
            else:
                config[f"module__{key}"] = network["module"][key] = value
        metadata["config"], metadata["network"] = json.dumps(config), json.dumps(network)
        _recheck(metadata, tensors)
    return change


def _many_classes(metadata, tensors):
    import torch

    values = [f"class{i}" for i in range(10_000)]
    metadata["classes"] = json.dumps({"values": values, "dtype": "<U9"})
    head = tensors["backbone.classifier.6.weight"]
    tensors["backbone.classifier.6.weight"] = torch.zeros(10_000, head.shape[1])
    tensors["backbone.classifier.6.bias"] = torch.zeros(10_000)
    _recheck(metadata, tensors)


def _list_config(metadata, tensors):
    metadata["config"] = "[1, 2]"
    _recheck(metadata, tensors)


def _overflowing_class(metadata, tensors):
    metadata["classes"] = json.dumps({"values": [0, 300], "dtype": "|i1"})
    _recheck(metadata, tensors)


@pytest.mark.parametrize("change, message", [
    (_set_network(hidden_units=1_000_000), "hidden_units"),
    (_set_network(image_size=1_000_000), "image_size"),
    (_set_network(crop=0), "crop"),
    (_many_classes, "2 to 1000"),
    (_list_config, "config is a list"),
    (_overflowing_class, "do not fit their dtype"),
])
def test_crafted_metadata_is_refused_with_one_clear_line(plain_model, tmp_path, capsys,
                                                         change, message):
    model = _rewrite(plain_model, tmp_path / "model.safetensors", change)
    _images(tmp_path / "cells", ["c.png"])
    assert main(["count", str(model), str(tmp_path / "cells"), "--out",
                 str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("leukosk count: error: ") and message in err, err
    assert "unexpected" not in err


def test_a_huge_hidden_layer_is_refused_before_allocating(plain_model, tmp_path):
    """In a process limited to 4 GB: before the check, loading this file asked
    for 4 TB (and 25 GB at 80,000 units, which a large machine grants)."""
    model = _rewrite(plain_model, tmp_path / "model.safetensors",
                     _set_network(hidden_units=65_536))

    def limit():
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    run = leukosk("predict", "--model", model, _images(tmp_path / "cells", ["c.png"]),
                  preexec_fn=limit)
    assert run.returncode == 1, run.stdout
    assert "do not match its tensors" in run.stderr, run.stderr


# -- 6, 16: broken entries are listed and skipped -----------------------------------------

def test_unreadable_subfolder_is_listed_not_dropped(plain_model, tmp_path, locked):
    data = _images(tmp_path / "sample", ["a/1.png", "a/2.png", "locked/3.png"])
    locked(data / "locked", 0o000)
    run = unprivileged("count", plain_model, data, "--out", tmp_path / "out")
    assert run.returncode == 0, run.stderr
    assert "locked (unreadable folder: Permission denied)" in run.stderr
    assert "2 cells;" in run.stdout


def test_broken_entries_are_skipped_with_one_warning(plain_model, tmp_path, capsys,
                                                     monkeypatch):
    data = _images(tmp_path / "sample", ["1.png", "2.png", ".hidden/3.png", "bomb/4.png"])
    (data / "empty.jpg").write_bytes(b"")
    (data / "dangling.png").symlink_to(tmp_path / "gone.png")
    os.mkfifo(data / "fifo.png")
    (data / "folder.jpg").mkdir()
    Image.new("RGB", (64, 64)).save(data / "bomb" / "4.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1500)  # 36x36 decodes, 64x64 is a bomb
    out = tmp_path / "out"
    with pytest.warns(PBCDataWarning, match="4 entries skipped") as record:
        assert main(["count", str(plain_model), str(data), "--out", str(out)]) == 0
    message = str(record[0].message)
    for fragment in ("4.png (image too large", "dangling.png (broken link)",
                     "empty.jpg (empty file)", "fifo.png (not a regular file)"):
        assert fragment in message, message
    assert "2 cells;" in capsys.readouterr().out  # not the one in .hidden/
    for name in ("count.csv", "count.json", "count.png"):
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_predict_into_a_closed_pipe_ends_quietly(plain_model, tmp_path):
    data = _images(tmp_path / "cells", [f"{i}.png" for i in range(3)])
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    process = subprocess.Popen([sys.executable, "-m", "leukosk", "predict", "--model",
                                str(plain_model), str(data)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # as `| head -1` does once it has its line
    _, err = process.communicate(timeout=300)
    assert process.returncode == 141, err
    assert err.decode().startswith("model: ") and err.count(b"\n") == 1, err


def test_explain_targets_a_class_of_an_integer_labelled_model(tmp_path, fast, tiny, capsys):
    X, _ = tiny
    model = tmp_path / "model.safetensors"
    VGG19LeukocyteClassifier(**fast).fit(X, np.repeat([0, 1, 2], 6)).save(model)
    data = _images(tmp_path / "cells", ["c.png"])
    assert main(["explain", str(model), str(data), "--out", str(tmp_path / "o"),
                 "--target", "1"]) == 0
    assert [p.name for p in (tmp_path / "o").glob("*.png")] == ["c_gradcam_1.png"]
    assert main(["explain", str(model), str(data), "--out", str(tmp_path / "o"),
                 "--target", "7"]) == 1
    assert "--target '7' is not a class of the model" in capsys.readouterr().err


# -- 13, 14: few-shot adaptation -------------------------------------------------------

@pytest.mark.parametrize("labels, new", [(("a", "b"), ["a", "blast", "b"]),
                                         ((0, 1), [0, 1, 2])])
def test_the_last_layer_reuses_each_known_class(labels, new, tmp_path, fast):
    import torch

    from conftest import make_images
    from leukosk.nn._vgg import HEAD_PREFIX

    X, _ = make_images(n_per_class=4, classes=("a", "b"))
    model = tmp_path / "m.safetensors"
    trained = VGG19LeukocyteClassifier(**fast).fit(X, np.repeat(labels, 4))
    trained.save(model)
    head = trained.module_.state_dict()[HEAD_PREFIX + "weight"]
    fast.update(weights=str(model), max_epochs=0, image_size=None)
    adapted = VGG19LeukocyteClassifier(classes=new, **fast).fit(X[:3], np.asarray(new))
    rows = adapted.module_.state_dict()[HEAD_PREFIX + "weight"]
    known = [i for i, c in enumerate(new) if c in labels]
    assert torch.equal(rows[known], head[[labels.index(new[i]) for i in known]])
    fresh = [i for i in range(len(new)) if i not in known]
    assert not torch.equal(rows[fresh], head[:1])


def test_few_shot_errors_name_the_problem():
    from sklearn.neighbors import KNeighborsClassifier

    from leukosk.model_selection import few_shot_scores

    X, y = np.zeros((3, 1)), ["a", "b", "c"]
    with pytest.raises(ValueError, match="every class of y has a single image"):
        few_shot_scores(KNeighborsClassifier(1), X, y)
    with pytest.raises(ValueError, match="n_draws=0: a positive number"):
        few_shot_scores(KNeighborsClassifier(1), np.zeros((4, 1)), ["a", "a", "b", "b"],
                        n_draws=0)


def test_the_chart_of_a_many_class_count_draws_the_most_frequent_classes():
    import time

    import matplotlib

    matplotlib.use("Agg")
    from sklearn.utils import Bunch

    from leukosk.reports import plot_differential_count

    table = [{"class": f"c{i}", "count": i % 7, "percent": 0.01, "ci_low": 0.0,
              "ci_high": 0.1} for i in range(10_000)]
    start = time.perf_counter()
    fig = plot_differential_count(Bunch(table=table, n_cells=30_000, confidence=0.95))
    assert len(fig.axes[0].patches) == 30
    assert "30 most frequent of 10000 classes" in fig.axes[0].get_title()
    assert time.perf_counter() - start < 60
