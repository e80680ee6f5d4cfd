"""load_pbc's scan cache and decoding under attack and mishap (issue 13, items 1, 5, 6, 9)."""

import os
import pickle
import shutil
import stat
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest
from PIL import Image

from leukosk.utils._images import decode_image
from leukosk.datasets import CacheWarning, PBCDataWarning, load_pbc
from leukosk.datasets import _cache


def _load(folder, cache, **kwargs):
    return load_pbc(folder, image_size=32, cache=cache, verbose=False, **kwargs)


class _Hostile:
    """A pickle that, when loaded, creates a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _entry(cache):
    (entry,) = cache.glob("scan-*")
    return entry


def test_cache_holds_no_pickle_and_survives_a_hostile_one(pbc_folder, tmp_path):
    cache = tmp_path / "cache"
    first = _load(pbc_folder, cache)
    entry = _entry(cache)
    assert sorted(p.name for p in entry.iterdir()) == ["images.npy", "index.json"]
    marker = tmp_path / "pwned"
    for name in ("images.npy", "index.json"):
        shutil.copy(entry / name, tmp_path / name)
        (entry / name).write_bytes(pickle.dumps(_Hostile(marker)))
        with pytest.warns(CacheWarning, match="damaged"):
            again = _load(pbc_folder, cache)
        assert not marker.exists()
        np.testing.assert_array_equal(again.images, first.images)


def test_forged_pixels_are_not_served(pbc_folder, tmp_path):
    cache = tmp_path / "cache"
    first = _load(pbc_folder, cache)
    npy = _entry(cache) / "images.npy"
    forged = np.zeros_like(first.images)
    np.save(npy, forged, allow_pickle=False)
    with pytest.warns(CacheWarning, match="checksum"):
        again = _load(pbc_folder, cache)
    np.testing.assert_array_equal(again.images, first.images)
    # an index moved to another key is refused too
    other = cache / ("scan-" + "0" * 64)
    shutil.copytree(_entry(cache), other)
    with pytest.warns(CacheWarning, match="another scan"):
        assert _cache.read_entry(cache, "0" * 64, len(first.target)) is None


def _rewrite_keeping_mtime(victim, data):
    st = victim.stat()
    victim.write_bytes(data)
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert victim.stat().st_size == st.st_size


def test_same_size_rewrite_with_mtime_kept_is_noticed(pbc_folder, tmp_path):
    cache = tmp_path / "cache"
    first = _load(pbc_folder, cache)
    victim = sorted((pbc_folder / "platelet").glob("*.jpg"))[0]
    index = list(first.filenames).index(str(victim))
    # the same pixels mirrored: a same-size JPEG only if re-encoded, so flip bytes
    # of the entropy-coded data instead, keeping the size (a corrupt-in-place file)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)
    _rewrite_keeping_mtime(victim, bytes(data))
    changed = _load(pbc_folder, cache)
    assert not np.array_equal(changed.images[index], first.images[index])
    # `cp -p` of another image of the same size over it: new pixels too
    (tmp_path / "other").mkdir()
    donor = tmp_path / "other" / "x.jpg"
    Image.fromarray(np.full((40, 40, 3), 200, np.uint8)).save(donor)
    shutil.copy2(donor, victim)
    fresh = _load(pbc_folder, cache)
    assert fresh.images[index].mean() > 150


def test_file_truncated_in_place_is_skipped(pbc_folder, tmp_path):
    cache = tmp_path / "cache"
    _load(pbc_folder, cache)
    victim = sorted((pbc_folder / "basophil").glob("*.jpg"))[0]
    data = victim.read_bytes()
    _rewrite_keeping_mtime(victim, data[: len(data) // 3] + bytes(len(data) - len(data) // 3))
    with pytest.warns(PBCDataWarning, match="skipped"):
        again = _load(pbc_folder, cache)
    assert str(victim) in dict(again.skipped)


def test_decoder_version_is_part_of_the_key(pbc_folder, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    _load(pbc_folder, cache)
    before = _entry(cache).name
    monkeypatch.setattr(_cache, "DECODER_VERSION", _cache.DECODER_VERSION + 1)
    _load(pbc_folder, cache)
    assert _entry(cache).name != before  # rebuilt, and the old entry removed


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_cache_warns_and_loads(pbc_folder, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.warns(CacheWarning, match="cannot write"):
            data = _load(pbc_folder, cache)
    finally:
        cache.chmod(stat.S_IRWXU)
    assert len(data.target) == 9


def test_unwritable_cache_warns_and_loads(pbc_folder, tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    with pytest.warns(CacheWarning, match="cannot write"):
        data = _load(pbc_folder, blocker)
    assert len(data.target) == 9


def test_killed_writer_leaves_nothing_behind(pbc_folder, tmp_path):
    cache = tmp_path / "cache"
    script = (
        "import os, sys, numpy as np\n"
        "from leukosk.datasets import _cache\n"
        "real = np.save\n"
        "def dying_save(f, *a, **k):\n"
        "    real(f, *a, **k); os._exit(9)\n"
        "np.save = dying_save\n"
        "from leukosk.datasets import load_pbc\n"
        f"load_pbc({str(pbc_folder)!r}, image_size=32, cache={str(cache)!r}, verbose=False)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert result.returncode == 9
    assert list(cache.glob("scan-*")) == []          # no half entry is visible
    assert len(list(cache.glob(".scan-tmp-*"))) == 1
    _load(pbc_folder, cache)                          # the next writer cleans up
    assert list(cache.glob(".scan-tmp-*")) == []
    assert len(list(cache.glob("scan-*"))) == 1


def test_concurrent_loaders_agree(pbc_folder, tmp_path):
    cache = tmp_path / "cache"
    results, errors = [], []

    def load():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                results.append(_load(pbc_folder, cache).images)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for images in results[1:]:
        np.testing.assert_array_equal(images, results[0])
    assert len(list(cache.glob("scan-*"))) == 1


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path):
    ramp = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    path = tmp_path / "gray16.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")
    rgb = decode_image(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (8, 8, 3)
    np.testing.assert_array_equal(rgb[..., 0], np.round(ramp / 257).astype(np.uint8))
    assert rgb.min() == 0 and rgb.max() == round(63000 / 257)


def test_bombs_loops_and_unreadable_files_are_skipped(pbc_folder, tmp_path):
    bomb = pbc_folder / "basophil" / "BA_bomb.png"
    Image.new("1", (30000, 30000)).save(bomb)  # 1-bit: a small file
    (pbc_folder / "eosinophil" / "EO_loop.jpg").symlink_to(pbc_folder / "eosinophil" / "EO_loop.jpg")
    locked = pbc_folder / "platelet" / "PLT_locked.jpg"
    shutil.copy(sorted((pbc_folder / "platelet").glob("*.jpg"))[0], locked)
    locked.chmod(0)
    try:
        with pytest.warns(PBCDataWarning, match="skipped"):
            data = _load(pbc_folder, False)
    finally:
        locked.chmod(stat.S_IRUSR | stat.S_IWUSR)
    reasons = dict(data.skipped)
    assert reasons[str(bomb)].startswith("image too large")
    assert reasons[str(pbc_folder / "eosinophil" / "EO_loop.jpg")].startswith("unreadable file")
    if os.geteuid() != 0:
        assert reasons[str(locked)].startswith("unreadable file")
    assert len(data.target) == 9 + (os.geteuid() == 0)
    with pytest.raises(ValueError, match="too large|not readable"):
        decode_image(bomb)
