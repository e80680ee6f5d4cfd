"""leukosk/utils/_files.py: the one reader of tensor files, the one SHA-256 of a
file, the one clean-up of what killed writers left; and that each stays one."""

import ast
import hashlib
import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from leukosk.utils._files import (CHUNK, dead_writer, read_safetensors_metadata,
                                  read_tensors, remove_dead_temps, sha256_bytes,
                                  sha256_file, writer_tempdir)

PACKAGE = Path(__file__).resolve().parent.parent / "leukosk"


# --- sha256_file / sha256_bytes ----------------------------------------------

def test_sha256_file_streams_a_file_of_several_chunks(tmp_path, monkeypatch):
    data = bytes(range(256)) * (CHUNK // 256 * 2 + 7)  # two chunks and a bit
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("read whole"))
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert sha256_file(path, chunk_size=1000) == hashlib.sha256(data).hexdigest()


def test_sha256_file_of_an_empty_file(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_file(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()


def test_sha256_bytes_of_bytes_text_and_buffers():
    import numpy as np

    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert sha256_bytes(array.data) == hashlib.sha256(array.tobytes()).hexdigest()
    assert sha256_bytes("caf\u00e9") == hashlib.sha256("caf\u00e9".encode()).hexdigest()
    assert sha256_bytes("\udcff") == hashlib.sha256(b"\xff").hexdigest()  # a raw byte


# --- read_tensors --------------------------------------------------------------

@pytest.fixture()
def state():
    return {"a": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([1, 2])}


def test_reads_safetensors_with_metadata_and_torch_save(tmp_path, state):
    save_file(state, str(tmp_path / "s.safetensors"), metadata={"format": "x"})
    torch.save(state, tmp_path / "s.pt")
    tensors, metadata = read_tensors(tmp_path / "s.safetensors", metadata=True)
    assert metadata == {"format": "x"}
    assert read_safetensors_metadata(tmp_path / "s.safetensors") == {"format": "x"}
    for read in (tensors, read_tensors(tmp_path / "s.pt"),
                 read_tensors(io.BytesIO((tmp_path / "s.pt").read_bytes()))):
        assert read.keys() == state.keys()
        assert all(torch.equal(read[k], state[k]) for k in state)


def test_tensors_do_not_alias_the_file(tmp_path, state):
    """A file rewritten in place later changes nothing already read."""
    path = tmp_path / "s.safetensors"
    save_file(state, str(path))
    tensors = read_tensors(path)
    with open(path, "r+b") as f:  # in place, as cp onto it would
        f.truncate(8)
    assert torch.equal(tensors["a"], state["a"])


def _bad_files(tmp_path, state):
    good = tmp_path / "good.safetensors"
    save_file(state, str(good))
    torch.save(state, tmp_path / "good.pt")
    marker = tmp_path / "ran"
    files = {
        "empty.safetensors": b"",
        "garbage.safetensors": b"not a safetensors file at all" * 10,
        "truncated.safetensors": good.read_bytes()[:40],
        "empty.pt": b"",
        "garbage.pt": b"hello" * 50,
        "truncated.pt": (tmp_path / "good.pt").read_bytes()[:200],
        "pickle.pt": pickle.dumps({"a": _Hostile(str(marker))}),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return [tmp_path / name for name in files], marker


class _Hostile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_unreadable_files_are_one_value_error_naming_file_problem_and_fix(tmp_path, state):
    paths, marker = _bad_files(tmp_path, state)
    for path in paths:
        with pytest.raises(ValueError) as info:
            read_tensors(path, what="weights file", fix="Export it again.")
        message = str(info.value)
        kind = "safetensors" if path.suffix == ".safetensors" else "torch.save"
        assert repr(str(path)) in message, message
        assert f"is not a readable {kind} weights file" in message, message
        assert "truncated or corrupt" in message and message.endswith("Export it again.")
        assert "\n" not in message
    assert not marker.exists()  # the pickle was refused, not run


def test_a_pickle_is_refused_and_said_so(tmp_path, state):
    paths, marker = _bad_files(tmp_path, state)
    with pytest.raises(ValueError, match="holds objects other than tensors") as info:
        read_tensors(tmp_path / "pickle.pt")
    assert "weights_only" not in str(info.value)  # torch's advice to turn it off is dropped
    assert "refused" in str(info.value) and not marker.exists()


def test_safetensors_by_flag_whatever_the_suffix(tmp_path, state):
    save_file(state, str(tmp_path / "params.bin"))
    assert read_tensors(tmp_path / "params.bin", safetensors=True).keys() == state.keys()
    with pytest.raises(ValueError, match="not a readable torch.save"):
        read_tensors(tmp_path / "params.bin")


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model file .*nothing.safetensors.*Fix"):
        read_tensors(tmp_path / "nothing.safetensors", what="model file", fix="Fix.")
    with pytest.raises(ValueError, match="is not a file"):
        read_tensors(tmp_path, safetensors=True)
    with pytest.raises(FileNotFoundError):
        read_safetensors_metadata(tmp_path / "nothing.safetensors")


def test_metadata_of_a_damaged_file_is_the_same_error(tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(b"x" * 100)
    with pytest.raises(ValueError, match="not a readable safetensors model file"):
        read_safetensors_metadata(tmp_path / "bad.safetensors", what="model file")


# --- remove_dead_temps ---------------------------------------------------------

def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_removes_what_a_dead_writer_left_and_keeps_the_rest(tmp_path):
    dead = _dead_pid()
    (tmp_path / f".tmp-{dead}-abc").mkdir()
    (tmp_path / f".tmp-{dead}-abc" / "half.bin").write_bytes(b"x")
    (tmp_path / f".tmp-{dead}-file.tmp").write_bytes(b"x")
    live = writer_tempdir(tmp_path, ".tmp-")
    kept = [live.name, ".tmp-notapid-x", "tmp-1-x", f".other-{dead}-x", "data.txt"]
    for name in kept[1:]:
        (tmp_path / name).write_text("keep")
    remove_dead_temps(tmp_path, ".tmp-")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)


def test_a_prefix_with_glob_characters_and_a_missing_folder(tmp_path):
    dead = _dead_pid()
    (tmp_path / f".a[1].{dead}-x.tmp").write_text("x")
    (tmp_path / f".a1.{dead}-x.tmp").write_text("x")  # what [1] would match as a glob
    remove_dead_temps(tmp_path, ".a[1].")
    assert [p.name for p in tmp_path.iterdir()] == [f".a1.{dead}-x.tmp"]
    remove_dead_temps(tmp_path / "absent", ".tmp-")  # nothing there, no error


def test_dead_writer_reads_the_pid_after_the_prefix():
    import os

    assert not dead_writer(f".tmp-{os.getpid()}-x", ".tmp-")
    assert dead_writer(f".tmp-{_dead_pid()}-x", ".tmp-")
    assert not dead_writer(".tmp-x-1", ".tmp-")


# --- each of these exists once -------------------------------------------------

#: Digests of content, not of a file: allowed outside utils/_files.py by name.
CONTENT_DIGESTS = {("io/_model_file.py", "_digest")}


def _calls(node, dotted):
    """Calls in ``node`` of the dotted name (``hashlib.sha256``, or a name
    imported from its module)."""
    module, _, name = dotted.rpartition(".")
    for call in ast.walk(node):
        if not isinstance(call, ast.Call):
            continue
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr == name and ast.unparse(
                func.value).endswith(module.rpartition(".")[2]):
            yield call
        elif isinstance(func, ast.Name) and func.id == name:
            yield call


def _functions(tree):
    """Each top-level statement's name (a function's, else None) and node."""
    for node in tree.body:
        yield getattr(node, "name", None), node


@pytest.mark.parametrize("dotted", ["hashlib.sha256", "safetensors.torch.load_file",
                                    "safetensors.safe_open", "safetensors.torch.load",
                                    "torch.load"])
def test_one_place_reads_tensor_files_and_hashes(dotted):
    """SHA-256s and reads of tensor files are in utils/_files.py only."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative == "utils/_files.py":
            continue
        tree = ast.parse(path.read_text(), relative)
        for function, node in _functions(tree):
            if (relative, function) in CONTENT_DIGESTS and dotted == "hashlib.sha256":
                continue
            found += [f"{relative}:{call.lineno}" for call in _calls(node, dotted)]
    assert not found, (f"{dotted} outside leukosk/utils/_files.py: {found}; use "
                       "read_tensors / sha256_file / sha256_bytes")


def test_the_check_sees_a_call():
    tree = ast.parse("import hashlib\ndef f(p):\n    return hashlib.sha256(p)\n"
                     "from safetensors import safe_open\nsafe_open('x', 'pt')\n")
    assert [c.lineno for c in _calls(tree, "hashlib.sha256")] == [3]
    assert [c.lineno for c in _calls(tree, "safetensors.safe_open")] == [5]


@pytest.mark.parametrize("name", ["_take", "_sha256", "_remove_stale", "_dead_writer",
                                  "_remove_leftovers", "read_state_dict"])
def test_removed_duplicates_stay_removed(name):
    defined = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
               for node in ast.walk(ast.parse(p.read_text()))
               if isinstance(node, ast.FunctionDef) and node.name == name]
    allowed = {"_remove_stale": ["io/_checkpoint.py"]}  # old checkpoints, then temps
    assert defined == allowed.get(name, []), f"{name} defined in {defined}"


def test_another_machines_temporaries_are_never_judged_dead(tmp_path):
    """On a folder shared between machines, a process id says nothing about
    another machine's processes: its writer's temporaries stay."""
    from leukosk.utils._files import writer_id

    theirs = tmp_path / f".tmp-{_dead_pid()}h{'0' * 8}-x"   # another host's tag
    ours_dead = tmp_path / f".tmp-{_dead_pid()}h{writer_id().partition('h')[2]}-y"
    legacy_dead = tmp_path / f".tmp-{_dead_pid()}-z"      # bare pid: this machine's
    for path in (theirs, ours_dead, legacy_dead):
        path.write_text("x")
    remove_dead_temps(tmp_path, ".tmp-")
    assert [p.name for p in tmp_path.iterdir()] == [theirs.name]
    assert writer_tempdir(tmp_path, ".tmp-").name.startswith(f".tmp-{writer_id()}-")


def test_files_written_together_are_all_or_none(tmp_path, monkeypatch):
    # issue 29: a model and its card; a failed move undoes the moves made
    from leukosk.utils import _files

    card, model = tmp_path / "card.json", tmp_path / "model.bin"
    card.write_text("old card")
    model.write_bytes(b"old model")
    replace = os.replace

    def failing(src, dst):
        if Path(dst) == model:
            raise OSError("disk gone")
        return replace(src, dst)

    monkeypatch.setattr(_files.os, "replace", failing)
    with pytest.raises(OSError, match="disk gone"):
        with _files.atomic_paths(card, model) as (card_tmp, model_tmp):
            card_tmp.write_text("new card")
            model_tmp.write_bytes(b"new model")
    monkeypatch.undo()
    assert (card.read_text(), model.read_bytes()) == ("old card", b"old model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.json", "model.bin"]
