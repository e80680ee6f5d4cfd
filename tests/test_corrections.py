"""Corrections teach the model: count -> review -> corrections.csv -> adapt -> count."""

import csv
import json
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

matplotlib.use("Agg")

from leukosk import VGG19LeukocyteClassifier
from leukosk.cli import main
from leukosk.corrections import adapt_to_corrections, read_corrections, write_adapted_model


def _shifted(src, dst):
    """A cell as a lab whose camera swaps red and blue would show it."""
    Image.fromarray(np.asarray(Image.open(src).convert("RGB"))[..., ::-1]).save(dst)


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory):
    """Bundled cells as a red-blue-swapping camera shows them: 5 per class
    reviewed (the counted folder and its corrections.csv), 5 others held out.

    On such cells the shipped model errs systematically; the review's
    corrections (every reviewed cell, with its true class) should fix that.
    """
    from leukosk import load_pretrained
    from leukosk.datasets import sample_folder

    root = tmp_path_factory.mktemp("lab")
    folder, held_out = root / "sample", root / "held_out"
    for label_dir in sorted(sample_folder().iterdir()):
        if not label_dir.is_dir():
            continue
        files = sorted(label_dir.glob("*.jpg"))[:10]
        for target, part in ((folder, files[:5]), (held_out / label_dir.name, files[5:])):
            target.mkdir(parents=True, exist_ok=True)
            for src in part:
                _shifted(src, target / f"{label_dir.name}_{src.stem}.png")
    cells = sorted(folder.glob("*.png"))
    predicted = load_pretrained(device="cpu").predict([str(c) for c in cells])
    corrections = root / "downloads" / "corrections.csv"
    corrections.parent.mkdir()
    with open(corrections, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "model_class", "corrected_class"])
        for cell, guess in zip(cells, predicted):
            writer.writerow([cell.name, guess, cell.name.split("_")[0]])
    return folder, corrections, held_out


def _error(clf, held_out):
    from leukosk.datasets import load_pbc

    data = load_pbc(held_out, verbose=False, cache=False)
    return float(np.mean(clf.predict(data.images) != data.target))


def test_read_corrections_finds_the_cells(reviewed):
    folder, corrections, _ = reviewed
    with pytest.raises(FileNotFoundError, match="--images FOLDER"):
        read_corrections(corrections)
    fixes = read_corrections(corrections, images=folder)
    assert len(fixes.files) == 40 and fixes.n_corrected + fixes.n_confirmed == 40
    assert fixes.n_corrected >= 10  # a systematic error


def test_corrections_of_a_systematic_error_reduce_it(reviewed, tmp_path):
    from leukosk import load_pretrained

    folder, corrections, held_out = reviewed
    before = _error(load_pretrained(device="cpu"), held_out)
    clf = adapt_to_corrections("default", corrections, images=folder, max_epochs=8,
                               tta=False, device="cpu")
    assert len(clf.classes_) == 8  # every class of the model, not only the corrected
    after = _error(clf, held_out)
    assert after <= before - 0.2, (before, after)
    assert clf.card_["adapted_from"] == "PBC_VGG19BN_W25_64PX_V2" or \
        clf.card_["adapted_from"].startswith("PBC_")
    assert clf.card_["n_cells"] == 40 and clf.card_["cells_per_class"]["ig"] == 5
    model = write_adapted_model(clf, tmp_path / "adapted")
    card = json.loads((tmp_path / "adapted" / "model_card.json").read_text())
    assert card["n_corrected"] == clf.card_["n_corrected"] >= 10
    assert _error(VGG19LeukocyteClassifier.load(model), held_out) == after


def test_adapt_command_then_count_with_the_new_model(reviewed, tmp_path, capsys):
    folder, corrections, held_out = reviewed
    extra = tmp_path / "labelled"
    for label in ("ig", "monocyte", "platelet"):
        (extra / label).mkdir(parents=True)
        src = next((held_out / label).iterdir())
        Image.open(src).save(extra / label / src.name)
    out = tmp_path / "adapted"
    assert main(["adapt", "default", str(corrections), str(extra), "--images",
                 str(folder), "--out", str(out), "--epochs", "1", "--device", "cpu",
                 "--quiet", "--no-check"]) == 0
    printed = capsys.readouterr().out
    assert "on 43 cells" in printed and "adapted without a check" in printed
    card = json.loads((out / "model_card.json").read_text())
    assert card["n_from_folders"] == 3 and card["folders"] == ["labelled"]
    assert main(["count", str(out), str(folder), "--out", str(tmp_path / "count"),
                 "--quiet", "--device", "cpu"]) == 0
    assert (tmp_path / "count" / "index.html").is_file()


def test_adapt_refuses_unknown_classes(reviewed, tmp_path, capsys):
    folder, corrections, _ = reviewed
    bad = tmp_path / "corrections.csv"
    bad.write_text(corrections.read_text().replace(",platelet\n", ",megakaryocyte\n", 1)
                   .replace(",platelet\r\n", ",megakaryocyte\r\n", 1))
    assert main(["adapt", "default", str(bad), "--images", str(folder),
                 "--out", str(tmp_path / "m"), "--quiet", "--device", "cpu"]) == 1
    assert "['megakaryocyte'] are not classes of the model" in capsys.readouterr().err
    bad.write_text("name,class\na.jpg,ig\n")
    assert main(["adapt", "default", str(bad), "--out", str(tmp_path / "m")]) == 1
    assert "no column(s)" in capsys.readouterr().err


def test_adapt_names_models_as_every_command_does(reviewed, tmp_path):
    """One rule for MODEL arguments (leukosk.resolve_model): a missing model
    folder is named with the fix, and a folder that is not a model is refused."""
    folder, corrections, _ = reviewed
    with pytest.raises(FileNotFoundError, match="no model.safetensors in"):
        adapt_to_corrections(tmp_path / "no-such-model", corrections, images=folder)
    not_a_model = tmp_path / "notes.safetensors"
    not_a_model.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="is not a leukosk model"):
        adapt_to_corrections(not_a_model, corrections, images=folder)


def test_a_review_that_would_not_help_keeps_the_starting_model(tmp_path, capsys):
    """Issue 28: the review loop never makes a model worse. A fine-tune that
    ruins the model (a learning rate 500 times the recipe's) is caught on the
    cells held back, and the starting model is kept, unchanged, saying so."""
    from leukosk import load_pretrained
    from leukosk.datasets import load_pbc_sample, sample_folder

    paths, y = load_pbc_sample(return_paths=True, return_X_y=True)
    rows = [f"{p.parent.name}/{p.name},{t},{t}" for p, t in
            zip(map(Path, paths[::4]), y[::4])]  # 5 confirmed cells per class
    corrections = tmp_path / "corrections.csv"
    corrections.write_text("file,model_class,corrected_class\n" + "\n".join(rows) + "\n")
    out = tmp_path / "adapted"
    assert main(["adapt", "default", str(corrections), "--images", str(sample_folder()),
                 "--out", str(out), "--epochs", "1", "--device", "cpu", "--quiet"]) == 0
    assert "adapted without" not in capsys.readouterr().out
    clf = adapt_to_corrections("default", corrections, images=sample_folder(),
                               max_epochs=2, lr=0.5, device="cpu")
    assert clf.card_["adapted"] is False
    assert clf.card_["decision"].startswith("kept the starting model unchanged")
    check = clf.card_["check"]
    assert check["n"] == 40 and check["adapted_correct"] <= check["start_correct"]
    shipped = load_pretrained(device="cpu")
    np.testing.assert_array_equal(clf.predict_proba(paths[1::8]),
                                  shipped.predict_proba(paths[1::8]))
