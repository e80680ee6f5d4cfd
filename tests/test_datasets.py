"""load_pbc, load_pbc_sample and the data home (leukosk/datasets)."""

import os
import shutil
import time

import numpy as np
import pytest
from conftest import SHARED_PBC

from leukosk.datasets import PBC_CLASSES, PBCDataWarning, get_data_home, load_pbc


def _plant_bad_files(root):
    """The quirks of the public download, plus a truncated JPEG."""
    (root / "neutrophil").mkdir()
    (root / "neutrophil" / ".DS_169665.jpg").write_bytes(b"\x00\x05\x16\x07 not a jpeg")
    (root / "eosinophil" / "EO_bogus.jpg").write_bytes(b"<html>not found</html>")
    good = sorted((root / "basophil").glob("*.jpg"))[0]
    data = good.read_bytes()
    (root / "basophil" / "BA_truncated.jpg").write_bytes(data[: len(data) // 3])
    (root / "basophil" / "BA_copy.jpg").write_bytes(data)              # duplicate
    (root / "platelet" / "PLT_conflict.jpg").write_bytes(data)         # other label
    (root / "monocyte").mkdir()                                        # empty class
    (root / "README.txt").write_text("top-level files are ignored")
    return good


def test_clean_folder(pbc_folder):
    data = load_pbc(pbc_folder, image_size=32, cache=False, verbose=False)
    assert data.images.shape == (9, 32, 32, 3) and data.images.dtype == np.uint8
    assert list(data.target_names) == ["basophil", "eosinophil", "platelet"]
    assert data.skipped == [] and data.duplicates == [] and data.conflicts == []
    assert len(set(data.groups)) == 9
    paths = load_pbc(pbc_folder, cache=False, verbose=False)
    assert list(paths.images) == list(data.filenames)


def test_bad_files_are_skipped_reported_and_grouped(pbc_folder):
    good = _plant_bad_files(pbc_folder)
    with pytest.warns(PBCDataWarning, match="skipped") as record:
        data = load_pbc(pbc_folder, image_size=32, cache=False, verbose=False)
    assert "different labels" in str(record[0].message)
    reasons = dict(data.skipped)
    assert reasons[str(pbc_folder / "neutrophil" / ".DS_169665.jpg")] == "hidden file"
    assert reasons[str(pbc_folder / "eosinophil" / "EO_bogus.jpg")] == "not an image"
    assert reasons[str(pbc_folder / "basophil" / "BA_truncated.jpg")].startswith("unreadable")
    assert reasons[str(pbc_folder / "monocyte")] == "class folder without images"
    assert not any("README" in p for p in data.filenames)
    assert len(data.filenames) == 9 + 2
    assert [sorted(group) for group in data.duplicates] == [sorted(
        [str(good), str(pbc_folder / "basophil" / "BA_copy.jpg"),
         str(pbc_folder / "platelet" / "PLT_conflict.jpg")])]
    assert {label for _, label in data.conflicts[0]} == {"basophil", "platelet"}
    same = data.groups[np.isin(data.filenames, data.duplicates[0])]
    assert len(set(same)) == 1


def test_drop_duplicates_and_strict(pbc_folder):
    good = _plant_bad_files(pbc_folder)
    with pytest.warns(PBCDataWarning):
        data = load_pbc(pbc_folder, drop_duplicates=True, cache=False, verbose=False)
    # the conflicting group loses all its copies; nothing duplicated remains
    assert str(good) not in data.filenames
    assert sorted(data.dropped) == sorted(data.duplicates[0])
    assert len(set(data.groups)) == len(data.groups) == 8
    with pytest.raises(ValueError, match="not readable images.*strict=False"):
        load_pbc(pbc_folder, strict=True, cache=False, verbose=False)


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="fetch_pbc"):
        load_pbc(tmp_path / "absent")
    (tmp_path / "file.jpg").write_bytes(b"x")
    with pytest.raises(NotADirectoryError):
        load_pbc(tmp_path / "file.jpg")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        load_pbc(tmp_path / "empty")
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "BA_1.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match="no class subfolders"):
        load_pbc(flat)


def test_cache_hit_and_invalidation(pbc_folder, tmp_path):
    cache = tmp_path / "cache"
    first = load_pbc(pbc_folder, image_size=32, cache=cache, verbose=False)
    assert any(cache.rglob("images.npy"))
    again = load_pbc(pbc_folder, image_size=32, cache=cache, verbose=False)
    np.testing.assert_array_equal(again.images, first.images)
    # a changed file (new bytes, new mtime) must not be served from the cache
    victim = pbc_folder / "platelet" / sorted(os.listdir(pbc_folder / "platelet"))[0]
    other = sorted((pbc_folder / "basophil").glob("*.jpg"))[0]
    shutil.copyfile(other, victim)
    os.utime(victim, ns=(time.time_ns(), time.time_ns() + 10**9))
    with pytest.warns(PBCDataWarning, match="different labels"):
        changed = load_pbc(pbc_folder, image_size=32, cache=cache, verbose=False)
    index = list(changed.filenames).index(str(victim))
    assert not np.array_equal(changed.images[index], first.images[index])
    assert len(changed.duplicates) == 1
    with pytest.warns(PBCDataWarning):
        bigger = load_pbc(pbc_folder, image_size=40, cache=cache, verbose=False)
    assert bigger.images.shape[1:3] == (40, 40)


def test_data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("LEUKOSK_DATA", str(tmp_path / "from_env"))
    assert get_data_home() == tmp_path / "from_env"
    assert (tmp_path / "from_env").is_dir()
    assert get_data_home(tmp_path / "explicit") == tmp_path / "explicit"


@pytest.mark.skipif(not SHARED_PBC.is_dir(), reason="../shared PBC data absent")
def test_real_development_part(tmp_path):
    expected = {"basophil": 730, "eosinophil": 1871, "erythroblast": 931,
                "ig": 1737, "lymphocyte": 728, "monocyte": 852,
                "neutrophil": 1997, "platelet": 1408}
    with pytest.warns(PBCDataWarning) as record:
        data = load_pbc(SHARED_PBC, cache=tmp_path, verbose=False)
    names, counts = np.unique(data.target, return_counts=True)
    assert tuple(names) == PBC_CLASSES
    assert dict(zip(names, counts.tolist())) == expected
    assert [os.path.basename(p) for p, _ in data.skipped] == [".DS_169665.jpg"]
    assert len(data.conflicts) == 1
    assert {label for _, label in data.conflicts[0]} == {"eosinophil", "neutrophil"}
    assert "different labels" in str(record[0].message)
    assert len(data.duplicates) >= 1
