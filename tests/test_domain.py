"""Lab-shift score and warning: folders unlike the training lab are flagged."""

import warnings

import numpy as np
import pytest
from conftest import FAST, make_images
from PIL import Image

from leukosk import VGG19LeukocyteClassifier
from leukosk.adapt import adapt_batch_norm
from leukosk.cli import main
from leukosk.domain import (MIN_IMAGES, LabShiftMonitor, LabShiftWarning,
                            calibrate_lab_shift, check_lab_shift, fit_lab_references,
                            lab_shift_score, watch_lab_shift)


def other_lab(X):
    """The same cells under a yellow lamp, darker and less contrasted."""
    shifted = X.astype(float) * [1.0, 0.9, 0.5] * 0.7 + 40
    return np.clip(shifted, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def fitted():
    X, y = make_images(n_per_class=20, size=32, seed=0)
    clf = VGG19LeukocyteClassifier(**dict(FAST, batch_norm=True, max_epochs=2)).fit(X, y)
    # two epochs leave the running statistics half-way from their start:
    # estimate them exactly on the training images, as a long fit would
    adapt_batch_norm(clf, X)
    held_out, _ = make_images(n_per_class=20, size=32, seed=1)
    return clf, held_out


def test_score_is_low_on_the_training_lab_and_high_on_another(fitted):
    clf, held_out = fitted
    same, other = lab_shift_score(clf, held_out), lab_shift_score(clf, other_lab(held_out))
    assert 0 <= same < other / 3


def test_monitor_gathers_while_predicting_without_changing_predictions(fitted):
    clf, held_out = fitted
    plain = clf.predict_proba(held_out)
    with LabShiftMonitor(clf) as monitor:
        watched = clf.predict_proba(held_out)
    np.testing.assert_array_equal(plain, watched)
    assert monitor.n_images == len(held_out)
    assert monitor.score == pytest.approx(lab_shift_score(clf, held_out))
    with LabShiftMonitor(clf) as idle:
        pass
    assert np.isnan(idle.score)


def test_calibration_threshold_separates_and_warns_once(fitted):
    clf, held_out = fitted
    calibration = calibrate_lab_shift(clf, held_out, n_images=MIN_IMAGES, n_folders=30)
    assert calibration.threshold > calibration.scores.max()
    clf.lab_shift_threshold_ = calibration.threshold
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert check_lab_shift(clf, held_out[::3]).shifted is False  # 20, all classes
        with pytest.warns(LabShiftWarning, match="unmeasured") as record:
            verdict = check_lab_shift(clf, other_lab(held_out), where="folder x")
        assert verdict.shifted and len(record) == 1 and "folder x" in str(record[0].message)
        # too few images for a verdict: no claim either way
        assert check_lab_shift(clf, other_lab(held_out[::4])).shifted is None  # 15
        with pytest.warns(LabShiftWarning), watch_lab_shift(clf, len(held_out)) as seen:
            clf.predict(other_lab(held_out))
        assert seen.shifted and seen.score > seen.threshold
    finally:
        del clf.lab_shift_threshold_


def test_no_threshold_no_verdict_and_no_batch_norm_is_an_error(fitted, tiny):
    clf, held_out = fitted
    assert check_lab_shift(clf, other_lab(held_out)).shifted is None
    with watch_lab_shift(clf, len(held_out)) as seen:
        clf.predict(held_out)
    assert seen.shifted is None
    X, y = tiny
    plain = VGG19LeukocyteClassifier(**dict(FAST, batch_norm=False)).fit(X, y)
    with pytest.raises(ValueError, match="no batch norm"):
        lab_shift_score(plain, X)


def _with_threshold(source, threshold, target):
    """A copy of the model file ``source`` with another threshold, checksum
    recomputed (as a forger would)."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    from leukosk.io._model_file import _digest

    with safe_open(str(source), framework="pt") as f:
        metadata, tensors = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}
    network = json.loads(metadata["network"])
    network["lab_shift_threshold"] = threshold
    metadata["network"] = json.dumps(network)
    metadata["sha256"] = _digest(tensors, metadata)
    save_file(tensors, str(target), metadata=metadata)
    return target


def test_threshold_is_saved_with_the_model(fitted, tmp_path):
    clf, _ = fitted
    clf.lab_shift_threshold_ = 0.123
    try:
        path = clf.save(tmp_path / "m.safetensors")
    finally:
        del clf.lab_shift_threshold_
    assert VGG19LeukocyteClassifier.load(path).lab_shift_threshold_ == 0.123
    for bad in (float("nan"), -1.0, float("inf")):  # a damaged or crafted file
        with pytest.raises(ValueError, match="lab_shift_threshold"):
            VGG19LeukocyteClassifier.load(_with_threshold(path, bad, tmp_path / "bad.st"))
    assert not hasattr(VGG19LeukocyteClassifier.load(clf.save(tmp_path / "n.safetensors")),
                       "lab_shift_threshold_")


def test_cli_predict_warns_once_on_another_labs_folder(fitted, tmp_path, capsys):
    clf, held_out = fitted
    clf.lab_shift_threshold_ = calibrate_lab_shift(clf, held_out, n_images=MIN_IMAGES,
                                                   n_folders=30).threshold
    try:
        model = clf.save(tmp_path / "model.safetensors")
    finally:
        del clf.lab_shift_threshold_
    for name, images in (("same", held_out), ("other", other_lab(held_out))):
        folder = tmp_path / name
        folder.mkdir()
        for i, image in enumerate(images):
            Image.fromarray(image).save(folder / f"cell{i:02d}.png")
    runs = {}
    for name in ("same", "other"):  # in-process: the command's code path, no new interpreter
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")  # count every warning the command gives
            code = main(["predict", str(tmp_path / name), "--model", str(model),
                         "--device", "cpu"])
        shift = [w for w in seen if issubclass(w.category, LabShiftWarning)]
        runs[name] = (code, capsys.readouterr().out, shift)
    assert [run[0] for run in runs.values()] == [0, 0], runs
    assert runs["same"][2] == []
    assert len(runs["other"][2]) == 1 and "do not look like" in str(runs["other"][2][0].message)
    assert len(runs["other"][1].splitlines()) == len(held_out) + 1


# -- issue 28: the model's doubt, the second channel of the warning -----------------------

def test_unsureness_is_the_mean_of_one_minus_the_top_probability(fitted):
    clf, held_out = fitted
    with LabShiftMonitor(clf, per_image=True) as monitor:
        proba = clf.predict_proba(held_out)
    doubt = 1 - proba.max(axis=1)
    assert monitor.unsure == pytest.approx(doubt.mean(), abs=1e-5)
    assert monitor.subset_unsure([0, 5]) == pytest.approx(doubt[[0, 5]].mean(), abs=1e-5)


def test_a_folder_the_statistics_pass_is_flagged_by_the_models_doubt(fitted):
    """Lab B of issue 28: a score under its threshold, but a model unsure of
    its cells. Either channel flags the folder, and the warning says which."""
    clf, held_out = fitted
    with LabShiftMonitor(clf) as monitor:
        clf.predict_proba(held_out)
    with pytest.warns(LabShiftWarning, match="the model is unsure") as caught:
        verdict = check_lab_shift(clf, score=monitor.score, unsure=monitor.unsure,
                                  n_images=len(held_out), threshold=monitor.score * 10,
                                  unsure_threshold=monitor.unsure / 2)
    assert verdict.shifted and "lab-shift score" not in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = check_lab_shift(clf, score=monitor.score, unsure=monitor.unsure,
                                n_images=len(held_out), threshold=monitor.score * 10,
                                unsure_threshold=monitor.unsure * 2)
    assert quiet.shifted is False


def test_calibration_draws_each_folder_from_one_source(fitted):
    clf, held_out = fitted
    shifted = other_lab(held_out)
    X = np.concatenate([held_out, shifted])
    groups = np.repeat(["a", "b"], len(held_out))
    both = calibrate_lab_shift(clf, X, groups=groups, n_images=20, n_folders=10)
    alone = calibrate_lab_shift(clf, held_out, n_images=20, n_folders=10)
    assert both.scores.shape == (20,) and both.unsure.shape == (20,)
    # the shifted source's folders set the threshold: far above the plain lab's
    assert both.threshold > 3 * alone.threshold
    assert both.unsure_threshold >= alone.unsure_threshold
    with pytest.raises(ValueError, match="only 20 held-out images of b"):
        calibrate_lab_shift(clf, X[:80], groups=groups[:80], n_images=21)


def test_both_thresholds_are_saved_and_a_bad_one_is_refused(fitted, tmp_path):
    clf, _ = fitted
    model = VGG19LeukocyteClassifier.load(_save(clf, tmp_path / "m.safetensors"))
    model.lab_shift_threshold_, model.lab_shift_unsure_threshold_ = 0.05, 0.12
    again = VGG19LeukocyteClassifier.load(model.save(tmp_path / "t.safetensors"))
    assert (again.lab_shift_threshold_, again.lab_shift_unsure_threshold_) == (0.05, 0.12)
    model.lab_shift_unsure_threshold_ = float("nan")
    with pytest.raises(ValueError, match="lab_shift_unsure_threshold=nan"):
        model.save(tmp_path / "bad.safetensors")
    assert not (tmp_path / "bad.safetensors").exists()


def _save(clf, path):
    clf.save(path)
    return path


# -- issue 28: a model of several labs scores a folder against the nearest one ------------

def third_lab(X):
    """A lab like neither: blue-grey, washed out."""
    shifted = X.astype(float) * [0.3, 0.45, 0.6] + [60, 90, 120]
    return np.clip(shifted, 0, 255).astype(np.uint8)


@pytest.fixture
def two_labs(fitted):
    """The fitted model, given the statistics of two training labs (the
    plain one and ``other_lab``); removed afterwards."""
    clf, held_out = fitted
    X = np.concatenate([held_out, other_lab(held_out)])
    fit_lab_references(clf, X, np.repeat(["plain", "yellow"], len(held_out)))
    yield clf, held_out
    del clf.lab_shift_references_


def test_references_score_each_folder_against_its_nearest_training_lab(two_labs):
    clf, held_out = two_labs
    fresh, _ = make_images(n_per_class=20, size=32, seed=2)  # cells never seen
    with LabShiftMonitor(clf) as yellow:
        clf.predict(other_lab(fresh))
    assert yellow.nearest == "yellow"
    assert set(yellow.subset_scores()) == {"plain", "yellow"}
    assert yellow.score == min(yellow.subset_scores().values())
    plain_only = clf.lab_shift_references_.pop("yellow")
    try:  # against the plain lab alone the yellow folder is far
        assert lab_shift_score(clf, other_lab(fresh)) > 5 * yellow.score
    finally:
        clf.lab_shift_references_["yellow"] = plain_only
    X = np.concatenate([held_out, other_lab(held_out)])
    shift = calibrate_lab_shift(clf, X, groups=np.repeat(["plain", "yellow"], len(held_out)),
                                n_images=20, n_folders=20)
    scores = {name: lab_shift_score(clf, f(fresh)) for name, f in
              (("plain", lambda x: x), ("yellow", other_lab), ("third", third_lab))}
    assert scores["plain"] < shift.threshold and scores["yellow"] < shift.threshold
    assert scores["third"] > 2 * shift.threshold, (scores, shift.threshold)


def test_references_are_saved_read_back_and_a_crafted_one_is_refused(two_labs, tmp_path):
    clf, _ = two_labs
    path = clf.save(tmp_path / "m.safetensors")
    again = VGG19LeukocyteClassifier.load(path)
    assert again.lab_shift_references_.keys() == clf.lab_shift_references_.keys()
    for lab, layers in clf.lab_shift_references_.items():
        for (mean, var), (mean2, var2) in zip(layers, again.lab_shift_references_[lab]):
            np.testing.assert_allclose(mean, mean2)
            np.testing.assert_allclose(var, var2)
    held_out = make_images(n_per_class=5, size=32, seed=3)[0]
    assert lab_shift_score(again, held_out) == pytest.approx(lab_shift_score(clf, held_out))
    good = clf.lab_shift_references_
    crafted = [({"plain": [[[0.0], [-1.0]]]}, "lab_shift_references"),  # negative variance
               ({"plain": [[[float("nan")] * 3, [1.0] * 3]]}, "lab_shift_references"),
               ({"plain": "zeros"}, "lab_shift_references")]
    for bad, match in crafted:
        clf.lab_shift_references_ = bad
        with pytest.raises(ValueError, match=match):
            clf.save(tmp_path / "bad.safetensors")
        assert not (tmp_path / "bad.safetensors").exists()
    clf.lab_shift_references_ = {"plain": [[[0.0] * 5, [1.0] * 5]]}  # 5 channels: wrong
    try:
        with pytest.raises(ValueError, match="does not match the network"):
            lab_shift_score(clf, held_out)
        wrong = clf.save(tmp_path / "wrong.safetensors")  # well formed, wrong size
        with pytest.raises(ValueError, match="do not match the network"):
            VGG19LeukocyteClassifier.load(wrong)
    finally:
        clf.lab_shift_references_ = good


def test_class_references_keep_a_folder_of_one_cell_type_near_its_lab(fitted):
    """With ``y``, each lab's classes get their own statistics: a folder of
    one class of a training lab (a lymphocytosis) is near that class even
    where it is far from the lab's mix; another lab stays far."""
    clf, held_out = fitted
    X, y = make_images(n_per_class=20, size=32, seed=4)
    one = X[y == y[0]]
    try:
        fit_lab_references(clf, X, ["home"] * len(X))
        far = lab_shift_score(clf, one)
        fit_lab_references(clf, X, ["home"] * len(X), y=y)
        assert set(clf.lab_shift_references_) == {"home"} | {f"home/{c}" for c in set(y)}
        with LabShiftMonitor(clf) as monitor:
            clf.predict(one)
        assert monitor.nearest == f"home/{y[0]}" and monitor.score < far / 5
        assert lab_shift_score(clf, third_lab(X)) > 5 * lab_shift_score(clf, X)
        with pytest.raises(ValueError, match="y names 3 images"):
            fit_lab_references(clf, X, y=y[:3])
    finally:
        del clf.lab_shift_references_
