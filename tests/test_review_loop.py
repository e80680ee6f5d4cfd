"""The review loop under attack (issue 29): count -> review page ->
corrections.csv -> adapt, with hostile names, paths and files.

Each test fails on the code before its fix. The review page in a browser is
tested in ``test_review.py``.
"""

import csv
import json
import os
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

matplotlib.use("Agg")

from leukosk import VGG19LeukocyteClassifier
from leukosk.cli import main
from leukosk.corrections import COLUMNS, read_corrections
from leukosk.utils._output import csv_cell, encode_name


def _images(folder, names, seed=0):
    """Small real image files under ``folder`` (a str, bytes or path)."""
    rng = np.random.default_rng(seed)
    for name in names:
        path = os.path.join(os.fsdecode(folder), os.fsdecode(name))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (36, 36, 3), dtype=np.uint8)).save(
            path, format="PNG")
    return Path(os.fsdecode(folder))


def _corrections(path, rows):
    """A corrections.csv as the review page writes it (cells by csv_cell)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows([csv_cell(cell) for cell in row] for row in rows)
    return path


def _model(path, classes=("a", "b"), **params):
    from conftest import FAST, make_images

    X, y = make_images(n_per_class=4, classes=classes)
    VGG19LeukocyteClassifier(**dict(FAST, **params)).fit(X, y).save(path)
    return path


# -- 4: one encoding of a file name, read back exactly ------------------------------------

NAMES = ["'=x.png", " a.png", "a.png", "=y.png", "back\\slash.png", "\x1b[2Kz.png",
         os.fsdecode(b"cell\xff.png")]


def test_corrections_read_back_every_name_exactly(tmp_path):
    # an apostrophe was lost, a leading space stripped (another image trained
    # on), a name that is not UTF-8 came back as another text
    folder = _images(tmp_path / "sample", NAMES)
    fixes = read_corrections(_corrections(tmp_path / "c.csv",
                                          [[n, "a", "b"] for n in NAMES]), images=folder)
    assert [Path(f).name for f in fixes.files] == NAMES
    assert all(Path(f).is_file() for f in fixes.files)


def test_the_encoding_of_names_is_one_and_exact():
    from leukosk.utils._output import csv_text, decode_name, printable

    for name in NAMES + ["\\x41", "\ud800z", "\x85\u202e", "\x00", "''", "é"]:
        assert decode_name(encode_name(name)) == name
        assert csv_text(csv_cell(name)) == name
        # a message holding an encoded name is shown as it is
        assert printable(encode_name(name)) == encode_name(name)
    assert encode_name(os.fsdecode(b"cell\xff.png")) == "cell\\xff.png"
    with pytest.raises(ValueError, match="escapes nothing"):
        decode_name("a\\q.png")


# -- 6: names that are not valid Unicode reach the files escaped ----------------------------

def test_count_a_folder_whose_name_is_not_utf8(tmp_path, capsys):
    # failed after all the prediction work: "surrogates not allowed" (the title)
    model = _model(tmp_path / "m.safetensors")
    folder = _images(os.fsencode(tmp_path) + b"/s\xff", ["c1.png", "c2.png"])
    out = tmp_path / "out"
    assert main(["count", str(model), str(folder), "--out", str(out)]) == 0, \
        capsys.readouterr().err
    assert "<title>leukosk review: s\\xff</title>" in (out / "index.html").read_text(
        encoding="utf-8")


def test_count_with_a_class_named_with_a_lone_surrogate(tmp_path, capsys):
    # the model loaded, and count crashed in printable()
    model = _model(tmp_path / "m.safetensors", classes=("a\ud800", "b"))
    assert "a\ud800" in VGG19LeukocyteClassifier.load(model).classes_.tolist()
    folder = _images(tmp_path / "s", ["c1.png", "c2.png", "c3.png"])
    out = tmp_path / "out"
    assert main(["count", str(model), str(folder), "--out", str(out)]) == 0, \
        capsys.readouterr().err
    assert "a\\ud800" in capsys.readouterr().out
    table = json.loads((out / "count.json").read_text(encoding="ascii"))["table"]
    assert [row["class"] for row in table] == ["a\\ud800", "b"]
    assert "a\\ud800" in (out / "index.html").read_text(encoding="utf-8")
    assert (out / "count.csv").read_text(encoding="utf-8").splitlines()[1].startswith(
        "a\\ud800,")


# -- 5: corrections stay inside the counted folder -----------------------------------------

def test_corrections_outside_the_counted_folder_are_refused_alike(tmp_path):
    # absolute and ../ paths made any image on the machine training data, and
    # the message told whether a path existed
    folder = _images(tmp_path / "sample", ["c1.png"])
    secret = _images(tmp_path / "private", ["x-ray.png"]) / "x-ray.png"
    (folder / "out").symlink_to(secret.parent)
    messages = []
    for name in (str(secret), "../private/x-ray.png", "out/x-ray.png",
                 str(tmp_path / "private" / "none.png"), "../private/none.png",
                 "out/none.png", "missing.png"):
        csv_path = _corrections(tmp_path / "c.csv", [["c1.png", "a", "b"], [name, "a", "b"]])
        with pytest.raises(FileNotFoundError) as error:
            read_corrections(csv_path, images=folder)
        messages.append(str(error.value).replace(encode_name(name), "NAME"))
    assert len(set(messages)) == 1, messages
    assert "may not lie outside" in messages[0]
    fixes = read_corrections(_corrections(tmp_path / "c.csv", [["c1.png", "a", "b"]]),
                             images=folder)
    assert fixes.files.tolist() == [str((folder / "c1.png").resolve())]


# -- 10: a cell corrected twice -------------------------------------------------------------

def test_a_cell_corrected_to_two_classes_is_refused(tmp_path):
    # both rows were used: the cell was counted twice, under two classes
    folder = _images(tmp_path / "sample", ["c1.png", "c2.png"])
    rows = [["c1.png", "a", "b"], ["c2.png", "a", "a"], ["./c1.png", "a", "a"]]
    with pytest.raises(ValueError, match=r"corrects 1 cell\(s\) to more than one class "
                                         r"\('c1.png'\)"):
        read_corrections(_corrections(tmp_path / "c.csv", rows), images=folder)
    rows = [["c1.png", "a", "b"], ["c2.png", "a", "a"], ["c1.png", "a", "b"]]
    fixes = read_corrections(_corrections(tmp_path / "c.csv", rows), images=folder)
    assert [Path(f).name for f in fixes.files] == ["c1.png", "c2.png"]
    assert (fixes.n_corrected, fixes.n_confirmed) == (1, 1)


# -- 11 and a file that is not UTF-8: one clear line naming the file ------------------------

@pytest.mark.parametrize("content, message", [
    (b"file,model_class,corrected_class\n" + b"x" * 131_073 + b",a,b\n",
     "is not a CSV file leukosk reads"),
    (b"file,model_class,corrected_class\ncell\xff.png,a,b\n", "is not UTF-8 text"),
])
def test_a_broken_corrections_file_is_a_user_error_naming_it(tmp_path, capsys, content,
                                                             message):
    bad = tmp_path / "corrections.csv"
    bad.write_bytes(content)
    assert main(["adapt", "default", str(bad), "--out", str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("leukosk adapt: error: ") and len(err.splitlines()) == 1
    assert f"{bad} {message}" in err


# -- 3: adapt never writes over what it reads -----------------------------------------------

def test_adapt_refuses_to_overwrite_its_model_or_write_into_the_images(tmp_path, capsys):
    # `adapt SRC c.csv --out SRC` overwrote the model it adapted (its card then
    # named itself as its origin); --out inside --images was accepted
    source = tmp_path / "src"
    _model(source / "model.safetensors")
    before = (source / "model.safetensors").read_bytes()
    folder = _images(tmp_path / "sample", ["c1.png"])
    corrections = _corrections(tmp_path / "c.csv", [["c1.png", "a", "b"]])
    for model, out, message in ((source, source, "contains the input"),
                                (source / "model.safetensors", source, "contains the input"),
                                ("default", folder / "model", "is inside the input")):
        assert main(["adapt", str(model), str(corrections), "--images", str(folder),
                     "--out", str(out), "--epochs", "1", "--device", "cpu", "--quiet"]) == 1
        err = capsys.readouterr().err
        assert message in err and len(err.splitlines()) == 1, err
    assert (source / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in source.iterdir()) == ["model.safetensors"]
    assert sorted(p.name for p in folder.iterdir()) == ["c1.png"]


def test_a_failed_write_keeps_the_model_and_its_card_together(tmp_path):
    # the new model was written, then the card failed: the folder paired the
    # new model with the old card
    from leukosk.corrections import write_adapted_model

    first = VGG19LeukocyteClassifier.load(_model(tmp_path / "a.safetensors"))
    first.card_ = {"adapted_from": "first"}
    out = tmp_path / "adapted"
    write_adapted_model(first, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    second = VGG19LeukocyteClassifier.load(_model(tmp_path / "b.safetensors", random_state=1))
    second.card_ = {"adapted_from": "second", "not json": object()}
    with pytest.raises(TypeError):
        write_adapted_model(second, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# -- 9: a model saves only what it loads ----------------------------------------------------

@pytest.mark.parametrize("threshold", [float("nan"), -1.0, float("inf")])
def test_a_threshold_load_would_refuse_is_refused_on_save(tmp_path, threshold):
    # save() wrote it (calibrate_lab_shift(margin=-1) makes one), load() refused it
    clf = VGG19LeukocyteClassifier.load(_model(tmp_path / "m.safetensors"))
    clf.lab_shift_threshold_ = threshold
    with pytest.raises(ValueError, match="is not a finite, non-negative number"):
        clf.save(tmp_path / "bad.safetensors")
    assert not (tmp_path / "bad.safetensors").exists()
    clf.lab_shift_threshold_ = 0.5
    assert VGG19LeukocyteClassifier.load(clf.save(tmp_path / "good.safetensors")
                                         ).lab_shift_threshold_ == 0.5


# -- predict takes a model first, as count, explain and adapt do ----------------------------

def test_predict_takes_default_first_and_keeps_its_other_forms(tmp_path, capsys,
                                                              monkeypatch):
    # `leukosk predict default FILE` failed: no such image or folder: default
    image = str(_images(tmp_path / "s", ["c1.png"]) / "c1.png")
    model = _model(tmp_path / "m" / "model.safetensors")
    outputs = []
    for argv in (["default", image], [image], ["--model", "default", image],
                 [str(model.parent), image], [str(model), image]):
        assert main(["predict", *argv, "--device", "cpu"]) == 0, capsys.readouterr().err
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] == outputs[2] and outputs[3] == outputs[4]
    assert outputs[3] != outputs[0]  # the tiny model's classes
    monkeypatch.chdir(tmp_path)
    _images(tmp_path / "default", ["c2.png"])
    assert main(["predict", "default", image]) == 1
    assert "names both a shipped model and a file or folder" in capsys.readouterr().err
    assert main(["predict", "./default", image, "--device", "cpu"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
