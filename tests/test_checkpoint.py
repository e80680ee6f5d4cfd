"""Interrupted fits leave a checkpoint; fit(resume=True) continues from it."""

import numpy as np
import pytest
from skorch.callbacks import Callback

from leukosk import VGG19LeukocyteClassifier
from leukosk._checkpoint import checkpoint_files


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
    files = checkpoint_files(tmp_path / "ckpt")
    assert all(f.is_file() for f in files.values())
    assert not [p for p in (tmp_path / "ckpt").iterdir() if p.name.endswith(".tmp")]

    resumed = VGG19LeukocyteClassifier(resume=True, **fast).fit(X, y)
    assert len(resumed.history_) == 3
    assert resumed.history_[:, "epoch"] == [1, 2, 3]
    assert np.allclose(resumed.history_[:2, "train_loss"],
                       crashing.history_[:2, "train_loss"])
    done = VGG19LeukocyteClassifier(resume=True, **fast).fit(X, y)
    assert len(done.history_) == 3  # nothing left to train


def test_keyboard_interrupt_stops_cleanly(tiny, fast, tmp_path):
    X, y = tiny
    fast.update(max_epochs=3, checkpoint_dir=tmp_path)
    clf = VGG19LeukocyteClassifier(
        callbacks=[("stop", CrashAfter(1, KeyboardInterrupt()))], **fast)
    clf.fit(X, y)  # skorch ends training on Ctrl-C and keeps the model
    assert len(clf.history_) == 1
    assert clf.predict(X).shape == (len(X),)
    resumed = VGG19LeukocyteClassifier(resume=True, **fast).fit(X, y)
    assert len(resumed.history_) == 3


def test_resume_without_checkpoint_starts_fresh(tiny, fast, tmp_path):
    X, y = tiny
    clf = VGG19LeukocyteClassifier(resume=True, checkpoint_dir=tmp_path / "new",
                                   **fast).fit(X, y)
    assert len(clf.history_) == 1
    assert checkpoint_files(tmp_path / "new")["f_params"].is_file()


def test_resume_with_other_classes_is_explained(tiny, fast, tmp_path):
    X, y = tiny
    VGG19LeukocyteClassifier(checkpoint_dir=tmp_path, **fast).fit(X, y)
    keep = y != "platelet"
    with pytest.raises(ValueError, match="cannot resume"):
        VGG19LeukocyteClassifier(resume=True, checkpoint_dir=tmp_path,
                                 **fast).fit(X[keep], y[keep])
