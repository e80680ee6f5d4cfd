"""The library functions the ``leukosk`` commands call (issue 21), called
directly: model arguments, images under folders, a shipped model's conformal
sets, the count's files, Grad-CAM overlays."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image



def test_resolve_model_names_shipped_models_folders_and_files(model_and_images, tmp_path):
    from leukosk import LeukoskWeights, resolve_model

    model, _ = model_and_images
    default = LeukoskWeights["DEFAULT"]
    for spec in (None, "default", "DEFAULT", LeukoskWeights.DEFAULT, default.name):
        assert resolve_model(spec) is default and resolve_model(spec).name != "DEFAULT"
    assert resolve_model("PBC_VGG19BN_W25_64PX_V1") is LeukoskWeights.PBC_VGG19BN_W25_64PX_V1
    assert resolve_model(model) == model / "model.safetensors"
    assert resolve_model(str(model / "model.safetensors")) == model / "model.safetensors"
    for missing in (tmp_path, tmp_path / "nothing", "NO_SUCH_MODEL"):
        with pytest.raises(FileNotFoundError, match="no model.safetensors in .*leukosk train"):
            resolve_model(missing)
    with pytest.raises(TypeError, match="model must be"):
        resolve_model(3)


def test_load_model_loads_folders_files_and_shipped_models(model_and_images):
    from leukosk import LeukoskWeights, load_model

    model, cells = model_and_images
    for spec in (model, model / "model.safetensors"):
        clf = load_model(spec, device="cpu")
        assert clf.classes_.tolist() == ["basophil", "eosinophil", "platelet"]
        assert clf.verbose == 0
    shipped = load_model("default", device="cpu", tta=True)
    assert shipped.tta and shipped.classes_.tolist() == list(
        LeukoskWeights.DEFAULT.meta["classes"])
    assert shipped.lab_shift_threshold_ == LeukoskWeights.DEFAULT.meta["lab_shift"]["threshold"]


def test_stored_conformal_sets_are_a_shipped_models_thresholds(model_and_images):
    from leukosk import LeukoskWeights
    from leukosk.uncertainty import ConformalSets, stored_conformal_sets

    for spec, member in (("default", LeukoskWeights.DEFAULT),
                         ("PBC_VGG19BN_W25_64PX_V1", LeukoskWeights.PBC_VGG19BN_W25_64PX_V1)):
        sets = stored_conformal_sets(spec)
        assert isinstance(sets, ConformalSets)
        assert sets.thresholds == {float(k): v for k, v in
                                   member.meta["conformal"]["thresholds"].items()}
    model, _ = model_and_images
    assert stored_conformal_sets(model) is None  # a saved model stores none
    with pytest.raises(FileNotFoundError):
        stored_conformal_sets(model / "missing")


def test_list_images_searches_folders_by_suffix_and_takes_named_files(tmp_path):
    from leukosk.datasets import PBCDataWarning, list_images
    from leukosk.utils._images import IMAGE_SUFFIXES

    pixels = Image.fromarray(np.zeros((8, 8, 3), np.uint8))
    root = tmp_path / "sample"
    for name in ("cell1.png", "b/cell2.JPG", ".hidden.png", ".hid/x.png", "b/c/cell3.tiff"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        pixels.save(root / name, format="PNG")
    (root / "notes.txt").write_text("not an image")  # no image suffix: ignored in folders
    (root / "broken.png").write_bytes(b"")
    pixels.save(tmp_path / "odd.dat", format="PNG")  # named explicitly: any suffix
    assert {".jpg", ".png", ".tiff"} <= IMAGE_SUFFIXES
    with pytest.warns(PBCDataWarning, match=r"1 entry skipped: .*broken.png \(empty file\)"):
        files = list_images([root, tmp_path / "odd.dat"])
    assert [Path(f).relative_to(tmp_path).as_posix() for f in files] == [
        "sample/b/c/cell3.tiff", "sample/b/cell2.JPG", "sample/cell1.png", "odd.dat"]
    assert list_images(str(root / "cell1.png")) == [str(root / "cell1.png")]
    with pytest.raises(FileNotFoundError, match="no such image or folder"):
        list_images([root / "gone.png"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files found"):
        list_images([tmp_path / "empty"])


def test_write_count_files_writes_the_tables_escaped(tmp_path):
    import csv
    import json

    from sklearn.dummy import DummyClassifier
    from sklearn.utils import Bunch

    from leukosk.count import differential_count, write_count_files
    from leukosk.uncertainty import ConformalSets

    model = DummyClassifier().fit(np.zeros((4, 1)), ["=evil", "ig", "ig", "ig"])
    names = ["=cmd.png", "b.png", "c\udcff.png"]
    count = differential_count(model, np.zeros((3, 1)), names=names,
                               sets=ConformalSets({0.95: 0.9}))
    paths = write_count_files(tmp_path, count, model="model: m",
                              lab_shift=Bunch(score=0.01, threshold=0.05, shifted=False))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "count.csv", "count.json", "referred.csv"]
    rows = list(csv.reader(paths["csv"].open(encoding="utf-8")))
    assert rows == [["class", "count", "percent", "ci_low", "ci_high"],
                    ["'=evil", "0", "0.00", "0.00", "56.15"],
                    ["ig", "3", "100.00", "43.85", "100.00"]]
    referred = list(csv.reader(paths["referred"].open(encoding="utf-8")))
    assert referred[0] == ["file", "predicted", "plausible classes"]
    assert [row[0] for row in referred[1:]] == ["'=cmd.png", "b.png", "c\\xff.png"]
    document = json.loads(paths["json"].read_text())
    assert document["model"] == "model: m" and document["n_cells"] == 3
    assert document["lab_shift"] == {"score": 0.01, "threshold": 0.05, "unsure": None,
                                     "unsure_threshold": None, "shifted": False}
    assert [row["name"] for row in document["referred"]] == ["=cmd.png", "b.png",
                                                             "c\\xff.png"]
    write_count_files(tmp_path, count)
    document = json.loads(paths["json"].read_text())
    assert document["model"] is None
    assert document["lab_shift"] == {"score": None, "threshold": None, "unsure": None,
                                     "unsure_threshold": None, "shifted": None}


def test_overlay_is_the_jet_colour_map_laid_over_the_image():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from leukosk import reports
    from leukosk.explain import overlay

    rng = np.random.default_rng(0)
    image, cam = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8), rng.random((6, 5))
    heat = plt.get_cmap("jet")(cam)[..., :3] * 255  # what reports.overlay drew before
    expected = np.clip(0.55 * image + 0.45 * heat, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(overlay(image, cam), expected)
    assert reports.overlay is overlay


def test_write_grad_cam_overlays_decodes_each_image_once(model_and_images, tmp_path,
                                                         monkeypatch):
    import csv

    import leukosk.explain
    from leukosk import load_model
    from leukosk.explain import grad_cam, overlay, write_grad_cam_overlays
    from leukosk.utils._images import decode_image

    model, cells = model_and_images
    files = sorted(str(p) for p in cells.iterdir())
    (tmp_path / "a").mkdir()
    twin = tmp_path / "a" / "cell0.png"  # the same stem as cells/cell0.png
    Image.open(files[0]).resize((30, 40)).save(twin)
    files.append(str(twin))
    clf = load_model(model, device="cpu")
    decoded = []
    monkeypatch.setattr(leukosk.explain, "decode_image",
                        lambda path: decoded.append(path) or decode_image(path))
    out = tmp_path / "cams"
    result = write_grad_cam_overlays(clf, files, out, batch_size=4)
    assert sorted(decoded) == sorted(files)  # once each
    names = [p.name for p in result.overlays]
    assert names[1:-1] == [f"{Path(f).stem}_gradcam_{label}.png"
                           for f, label in zip(files[1:-1], result.labels[1:-1])]
    # stems that repeat: named by their path below the folder the images share
    assert f"cells_cell0.png_gradcam_{result.labels[0]}.png" in names[0]
    assert f"a_cell0.png_gradcam_{result.labels[-1]}.png" in names[-1]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        names + ["overlays.csv", ".leukosk-written.json"])  # and the manifest
    rows = list(csv.reader(result.listing.open(encoding="utf-8")))
    assert rows[0] == ["image", "overlay", "class"]
    assert [row[1] for row in rows[1:]] == names
    assert [row[2] for row in rows[1:]] == [str(c) for c in result.labels]
    maps, labels = grad_cam(clf, [files[-1]])  # the map of grad_cam, on the image
    assert labels[0] == result.labels[-1]
    expected = overlay(decode_image(files[-1]), maps[0])
    np.testing.assert_array_equal(np.asarray(Image.open(result.overlays[-1])), expected)

    again = write_grad_cam_overlays(clf, files[:2], out, target="platelet")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [p.name for p in again.overlays] + ["overlays.csv", ".leukosk-written.json"])
    assert set(again.labels) == {"platelet"}
    (out / "mine.txt").write_text("keep")
    with pytest.raises(ValueError, match="holds files this command did not write"):
        write_grad_cam_overlays(clf, files[:2], out)


def test_a_missing_model_file_is_named_as_a_file(tmp_path):
    from leukosk import resolve_model

    with pytest.raises(FileNotFoundError, match=r"no model file .*x\.safetensors; train one"):
        resolve_model(tmp_path / "x.safetensors")
    with pytest.raises(FileNotFoundError, match="no model.safetensors in .*'default'"):
        resolve_model(tmp_path / "folder")
