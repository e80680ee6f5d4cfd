"""Checkpoints as one atomic unit with a manifest; resume; interruption (issue 13, items 2, 4)."""

import json
from pathlib import Path
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from skorch.callbacks import Callback

from leukosk import FitInterruptedWarning, VGG19LeukocyteClassifier
from leukosk.io._checkpoint import latest_checkpoint


class CrashAfter(Callback):
    """Raise ``exc`` at the end of epoch ``epoch`` (after the checkpoint)."""

    def __init__(self, epoch, exc):
        self.epoch = epoch
        self.exc = exc

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.epoch:
            raise self.exc


def test_crash_leaves_last_epoch_and_resume_finishes(tiny, fast, tmp_path):
    X, y = tiny
    fast.update(max_epochs=3, checkpoint_dir=tmp_path / "ckpt")
    crashing = VGG19LeukocyteClassifier(
        callbacks=[("crash", CrashAfter(2, RuntimeError("power cut")))], **fast)
    with pytest.raises(RuntimeError, match="power cut"):
        crashing.fit(X, y)
    folder = latest_checkpoint(tmp_path / "ckpt")
    assert folder.name == "epoch-0002"
    assert sorted(p.name for p in folder.iterdir()) == [
        "history.json", "manifest.json", "optimizer.pt", "params.safetensors"]
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        ".fit.lock", "checkpoint.json", "epoch-0002"]  # older epochs, temporaries gone

    resumed = VGG19LeukocyteClassifier(resume=True, **fast).fit(X, y)
    assert resumed.history_[:, "epoch"] == [1, 2, 3]
    assert np.allclose(resumed.history_[:2, "train_loss"],
                       crashing.history_[:2, "train_loss"])
    done = VGG19LeukocyteClassifier(resume=True, **fast).fit(X, y)
    assert len(done.history_) == 3  # nothing left to train


def test_keyboard_interrupt_is_reported_and_kept(tiny, fast, tmp_path):
    X, y = tiny
    fast.update(max_epochs=3, checkpoint_dir=tmp_path)
    clf = VGG19LeukocyteClassifier(
        callbacks=[("stop", CrashAfter(1, KeyboardInterrupt()))], **fast)
    with pytest.warns(FitInterruptedWarning, match="after 1 complete epoch.*holds epoch 1"):
        clf.fit(X, y)  # as in skorch, the partly trained model is kept
    assert clf.interrupted_ and len(clf.history_) == 1
    assert clf.predict(X).shape == (len(X),)
    resumed = VGG19LeukocyteClassifier(resume=True, **fast).fit(X, y)
    assert not resumed.interrupted_ and len(resumed.history_) == 3


def test_resume_without_checkpoint_starts_fresh(tiny, fast, tmp_path):
    X, y = tiny
    clf = VGG19LeukocyteClassifier(resume=True, checkpoint_dir=tmp_path / "new",
                                   **fast).fit(X, y)
    assert len(clf.history_) == 1
    assert latest_checkpoint(tmp_path / "new").name == "epoch-0001"


@pytest.mark.parametrize("change, match", [
    (lambda X, y: (X, np.where(y == "platelet", "neutrophil", y)), "classes"),
    (lambda X, y: (X, y, {"image_size": 40}), "image_size=32 there, 40 here"),
    (lambda X, y: (X, y, {"module__hidden_units": 32}), "hidden_units=64 there, 32 here"),
])
def test_resume_refuses_what_does_not_match(tiny, fast, tmp_path, change, match):
    X, y = tiny
    VGG19LeukocyteClassifier(checkpoint_dir=tmp_path, **fast).fit(X, y)
    X2, y2, *more = change(X, y)
    params = {**fast, **(more[0] if more else {})}
    with pytest.raises(ValueError, match=f"cannot resume.*{match}"):
        VGG19LeukocyteClassifier(resume=True, checkpoint_dir=tmp_path, **params).fit(X2, y2)


def test_damaged_or_incomplete_checkpoint_is_refused(tiny, fast, tmp_path):
    X, y = tiny
    VGG19LeukocyteClassifier(checkpoint_dir=tmp_path, **fast).fit(X, y)
    folder = latest_checkpoint(tmp_path)
    (folder / "history.json").unlink()
    with pytest.raises(ValueError, match="incomplete or damaged"):
        VGG19LeukocyteClassifier(resume=True, checkpoint_dir=tmp_path, **fast).fit(X, y)
    (folder / "history.json").write_text("[]")
    with pytest.raises(ValueError, match="history.json does not match"):
        VGG19LeukocyteClassifier(resume=True, checkpoint_dir=tmp_path, **fast).fit(X, y)


def test_old_three_file_checkpoint_is_not_trusted(tiny, fast, tmp_path):
    X, y = tiny
    (tmp_path / "params.pt").write_bytes(b"")
    (tmp_path / "history.json").write_text("[]")
    with pytest.raises(ValueError, match="older leukosk"):
        VGG19LeukocyteClassifier(resume=True, checkpoint_dir=tmp_path, **fast).fit(X, y)


def test_refused_pickle_in_optimizer_state_is_one_clear_error(tiny, fast, tmp_path):
    X, y = tiny
    VGG19LeukocyteClassifier(checkpoint_dir=tmp_path, **fast).fit(X, y)
    folder = latest_checkpoint(tmp_path)
    marker = tmp_path / "pwned"
    script = (f"import pickle, os\nclass E:\n    def __reduce__(self):\n"
              f"        return (open, ({str(marker)!r}, 'w'))\n"
              f"open({str(folder / 'optimizer.pt')!r}, 'wb').write(pickle.dumps(E(), protocol=2))\n")
    subprocess.run([sys.executable, "-c", script], check=True)
    manifest = json.loads((folder / "manifest.json").read_text())
    import hashlib
    manifest["sha256"]["optimizer.pt"] = hashlib.sha256(
        (folder / "optimizer.pt").read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="holds objects other than tensors"):
        VGG19LeukocyteClassifier(resume=True, checkpoint_dir=tmp_path, **fast).fit(X, y)
    assert not marker.exists()


_SAVE_THEN_DIE = textwrap.dedent("""
    import os, sys, numpy as np
    sys.path.insert(0, {tests!r})
    from conftest import FAST, make_images
    from leukosk import VGG19LeukocyteClassifier
    from leukosk.io import _checkpoint
    real = _checkpoint._write_files
    def dying(net, folder):
        if len(net.history) == 2:
            (folder / "params.safetensors").write_bytes(b"half")
            os.kill(os.getpid(), 9)
        return real(net, folder)
    _checkpoint._write_files = dying
    X, y = make_images()
    VGG19LeukocyteClassifier(**dict(FAST, max_epochs=3, checkpoint_dir={ckpt!r})).fit(X, y)
""")


def test_sigkill_during_a_checkpoint_write_keeps_the_previous_one(tiny, fast, tmp_path):
    ckpt = tmp_path / "ckpt"
    tests = os.path.dirname(__file__)
    result = subprocess.run(
        [sys.executable, "-c", _SAVE_THEN_DIE.format(tests=tests, ckpt=str(ckpt))],
        capture_output=True)
    assert result.returncode == -signal.SIGKILL
    assert latest_checkpoint(ckpt).name == "epoch-0001"
    assert [p.name for p in ckpt.iterdir() if p.name.startswith(".epoch-tmp-")]
    X, y = tiny
    fast.update(max_epochs=3, checkpoint_dir=ckpt)
    resumed = VGG19LeukocyteClassifier(resume=True, **fast).fit(X, y)
    assert resumed.history_[:, "epoch"] == [1, 2, 3]
    assert sorted(p.name for p in ckpt.iterdir()) == [".fit.lock", "checkpoint.json",
                                                 "epoch-0003"]


def test_a_clone_does_not_resume_a_fit_on_other_data(tiny, fast, tmp_path):
    """Issue 21: clones share checkpoint_dir (GridSearchCV folds); with
    resume=True a fit on other data resumed the model another fit left."""
    from sklearn.base import clone

    from conftest import make_images

    X, y = tiny
    first = VGG19LeukocyteClassifier(checkpoint_dir=tmp_path, resume=True,
                                     **dict(fast, max_epochs=2)).fit(X, y)
    X2, y2 = make_images(seed=1)  # same shape and classes, other images
    with pytest.raises(ValueError, match="cannot resume.*other data.*18 images"):
        clone(first).fit(X2, y2)
    with pytest.raises(ValueError, match="cannot resume.*other data"):
        clone(first).fit(X, y[::-1])  # same images, other labels
    assert len(clone(first).fit(X, y).history_) == 2  # its own data: resumed, done


def test_concurrent_fits_into_one_checkpoint_dir_are_refused(tiny, fast, tmp_path):
    """Issue 21: two fits writing into one folder (clones under
    GridSearchCV(n_jobs=2)) overwrote and pruned each other's checkpoints."""
    from sklearn.base import clone

    X, y = tiny
    refused = []

    class SecondFit(Callback):
        def on_epoch_end(self, net, **kwargs):
            try:
                clone(net).set_params(callbacks=None).fit(X, y)
            except BlockingIOError as exc:
                refused.append(str(exc))

    clf = VGG19LeukocyteClassifier(checkpoint_dir=tmp_path, callbacks=[
        ("second", SecondFit())], **fast).fit(X, y)
    assert len(refused) == 1 and "in use by another fit" in refused[0]
    assert f"pid {os.getpid()}" in refused[0] and "own checkpoint_dir" in refused[0]
    assert latest_checkpoint(tmp_path).name == "epoch-0001"
    assert not (tmp_path / ".fit-owner.json").exists()  # released
    # a fit killed while it held the folder does not block the next one: the
    # operating system releases its lock with the process
    killed = subprocess.run([sys.executable, "-c", (
        "import os, sys; sys.path.insert(0, {root!r})\n"
        "from leukosk.io._checkpoint import checkpoint_owner\n"
        "with checkpoint_owner({folder!r}):\n"
        "    os.kill(os.getpid(), 9)").format(root=str(Path(__file__).parents[1]),
                                               folder=str(tmp_path))])
    assert killed.returncode == -9
    assert (tmp_path / ".fit-owner.json").exists()  # left behind by the killed fit
    clone(clf).set_params(callbacks=None).fit(X, y)
    assert not (tmp_path / ".fit-owner.json").exists()


def test_two_processes_never_both_own_a_checkpoint_folder(tmp_path):
    """The lock is the operating system's: of two processes that try at once,
    exactly one owns the folder (an owner file alone let both take over a
    dead owner's record)."""
    script = (
        "import sys, time; sys.path.insert(0, {root!r})\n"
        "from leukosk.io._checkpoint import checkpoint_owner\n"
        "try:\n"
        "    with checkpoint_owner({folder!r}):\n"
        "        print('owns', flush=True); time.sleep(2)\n"
        "except BlockingIOError:\n"
        "    print('refused', flush=True)").format(root=str(Path(__file__).parents[1]),
                                                  folder=str(tmp_path))
    runs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             text=True) for _ in range(2)]
    outcomes = sorted(run.communicate(timeout=60)[0].strip() for run in runs)
    assert outcomes == ["owns", "refused"]


def test_the_data_fingerprint_sees_every_pixel_of_listed_images():
    """Images given as a list are digested by their bytes (their str() would
    abbreviate a large array and hide a change in its middle)."""
    from leukosk.io._checkpoint import data_fingerprint

    images = [np.zeros((64, 64, 3), np.uint8) for _ in range(3)]
    changed = [image.copy() for image in images]
    changed[1][32, 32, 1] = 1
    y = ["a", "b", "a"]
    assert data_fingerprint(images, y) == data_fingerprint([i.copy() for i in images], y)
    assert data_fingerprint(images, y) != data_fingerprint(changed, y)
    assert data_fingerprint(np.stack(images), y) != data_fingerprint(np.stack(changed), y)
    assert data_fingerprint(["a.jpg", "b.jpg"], y[:2]) != data_fingerprint(
        ["a.jpg", "c.jpg"], y[:2])
