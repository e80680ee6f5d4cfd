"""Fig. 5 / Fig. 6 style figures and metric tables (leukosk/reports)."""

import json

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402

from leukosk.reports import (PAPER_CLASSES, PAPER_CONFUSION, evaluation_report,
                             paper_metrics, plot_confusion_matrix, plot_training_curves,
                             report_markdown, write_report)


def paper_predictions():
    """(y_true, y_pred) whose confusion matrix is the paper's Fig. 5."""
    y_true, y_pred = [], []
    for predicted, row in enumerate(PAPER_CONFUSION):
        for true, count in enumerate(row):
            y_true += [PAPER_CLASSES[true]] * count
            y_pred += [PAPER_CLASSES[predicted]] * count
    return np.array(y_true), np.array(y_pred)


def test_paper_metrics_match_the_margins_of_fig5():
    m = paper_metrics()
    assert round(100 * m["accuracy"], 1) == 98.1
    printed_precision = [99.2, 100, 99.7, 94.7, 98.1, 95.5, 98.0, 100]
    printed_recall = [98.6, 100, 98.1, 93.7, 99.2, 99.2, 96.4, 100]
    for name, p, r in zip(PAPER_CLASSES, printed_precision, printed_recall):
        assert round(100 * m[name]["precision"], 1) == p
        assert round(100 * m[name]["recall"], 1) == r
        assert m[name]["support"] == 364


def test_evaluation_report_reproduces_paper_from_its_counts():
    y_true, y_pred = paper_predictions()
    report = evaluation_report(y_true, y_pred)
    paper = report["paper"]
    assert report["accuracy"] == pytest.approx(paper["accuracy"])
    assert report["macro_f1"] == pytest.approx(paper["macro_f1"])
    assert report["balanced_accuracy"] == pytest.approx(paper["balanced_accuracy"])
    for name in PAPER_CLASSES:
        assert report["per_class"][name]["recall"] == pytest.approx(paper[name]["recall"])
    assert np.array_equal(np.array(report["confusion_matrix"]).T, PAPER_CONFUSION)
    md = report_markdown(report, figures=["confusion_matrix.png"])
    assert "| ig | 94.7 | 93.7 |" in md and "![confusion_matrix](confusion_matrix.png)" in md


def test_confusion_figure_shows_counts_percentages_and_margins():
    y_true, y_pred = paper_predictions()
    fig = plot_confusion_matrix(y_true, y_pred)
    assert isinstance(fig, Figure)
    texts = [t.get_text() for t in fig.axes[0].texts]
    for expected in ("359", "12.3%", "99.2%", "93.7%", "98.1%", "1.9%"):
        assert expected in texts
    assert fig.axes[0].get_ylabel() == "Output Class"
    assert len(texts) == 2 * (8 * 8 + 8 + 8 + 1)


def test_undefined_rates_show_nan_as_matlab_does():
    # "c" is never predicted (precision undefined), "d" never true (recall).
    fig = plot_confusion_matrix(["a", "b", "c", "c"], ["a", "b", "a", "d"],
                                labels=["a", "b", "c", "d"])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts.count("NaN%") == 4      # two lines in each of two margins
    assert "50.0%" in texts              # precision of "a": 1 of 2
    assert "0.0%" in texts               # recall of "c": none of 2


def test_training_curves_from_a_real_history(tiny, fast):
    from leukosk import VGG19LeukocyteClassifier

    X, y = tiny
    fast.update(max_epochs=2, validation=1 / 3, module__hidden_units=16)
    clf = VGG19LeukocyteClassifier(**fast).fit(X, y)
    fig = plot_training_curves(clf.history_)
    acc_ax, loss_ax = fig.axes
    assert [line.get_label() for line in acc_ax.get_lines()][:2] == ["Training", "Validation"]
    n_train_batches = sum(1 for e in clf.history_ for b in e["batches"]
                          if "train_loss" in b)
    assert max(loss_ax.get_lines()[0].get_xdata()) == n_train_batches  # one per iteration
    with pytest.raises(ValueError, match="empty"):
        plot_training_curves([])


def test_write_report_files(tmp_path):
    y_true, y_pred = paper_predictions()
    history = [{"epoch": 1, "train_acc": 0.9, "train_loss": 0.3,
                "batches": [{"train_loss": 0.4}, {"train_loss": 0.2}]}]
    paths = write_report(tmp_path / "rep", y_true, y_pred, history=history)
    for key in ("confusion_matrix", "training_curves"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert paths[key].with_suffix(".svg").read_text().lstrip().startswith("<?xml")
    report = json.loads(paths["json"].read_text())
    assert report["n_images"] == 2912
    assert "training_curves.png" in paths["markdown"].read_text()
    assert not [p for p in (tmp_path / "rep").iterdir() if p.name.endswith(".tmp")]


def test_trust_figures_and_report(tmp_path):
    from conftest import FAST, make_images

    from leukosk import VGG19LeukocyteClassifier
    from leukosk.count import differential_count
    from leukosk.reports import plot_differential_count, trust_report, write_report

    X, y = make_images(n_per_class=12, seed=3)
    clf = VGG19LeukocyteClassifier(**dict(FAST, max_epochs=2)).fit(X[::2], y[::2])
    summary, figures = trust_report(clf, X[1::2], y[1::2], coverage=(0.8,))
    assert set(figures) <= {"reliability", "top_losses"} and "reliability" in figures
    assert 0 <= summary["ece_before"] <= 1 and 0 <= summary["ece_after"] <= 1
    row = summary["conformal"]["0.8"]
    assert 0 <= row["referred"] <= 1 and set(row["referred_by_class"]) == set(clf.classes_)
    paths = write_report(tmp_path, y[1::2], clf.predict(X[1::2]), labels=clf.classes_,
                         trust=(summary, figures))
    text = paths["markdown"].read_text()
    assert "## How far to trust it" in text and "reliability.png" in text
    assert (tmp_path / "reliability.png").is_file()
    count = differential_count(clf, X[1::2])
    fig = plot_differential_count(count)
    assert len(fig.axes) == 1 and count.n_cells == len(X[1::2])
    # paths, even as a NumPy array of strings, name the referred cells
    from PIL import Image

    from leukosk.uncertainty import ConformalSets

    paths = []
    for i, image in enumerate(X[:2]):
        paths.append(str(tmp_path / f"cell_{i}.png"))
        Image.fromarray(image).save(paths[-1])
    strict = ConformalSets({0.95: 0.0})  # no class is plausible enough: refer all
    count = differential_count(clf, np.array(paths), sets=strict, coverage=0.95)
    assert [row["name"] for row in count.referred] == paths


def test_trust_report_with_classes_in_unsorted_order():
    """Issue 21: with ``classes=[...]`` unsorted, ``np.searchsorted(classes_, y)``
    read the probability of the wrong class as the true one's."""
    from conftest import FAST, make_images
    from sklearn.model_selection import train_test_split

    from leukosk import VGG19LeukocyteClassifier
    from leukosk.reports import plot_top_losses, trust_report

    X, y = make_images(n_per_class=8, seed=3)
    order = ["platelet", "basophil", "eosinophil"]
    clf = VGG19LeukocyteClassifier(**dict(FAST, classes=order)).fit(X[::2], y[::2])
    assert clf.classes_.tolist() == order
    proba = clf.predict_proba(X)
    truth = np.array([order.index(label) for label in y])
    _, rows = plot_top_losses(clf, X, y, k=len(y), proba=proba)
    for row in rows:
        assert row["p_true"] == pytest.approx(proba[row["index"], truth[row["index"]]])
    with pytest.raises(ValueError, match=r"label\(s\) \['neutrophil'\].*classes_ are"):
        plot_top_losses(clf, X[:1], ["neutrophil"])
    summary, _ = trust_report(clf, X, y, coverage=(0.8,))
    _, X_test, _, y_test = train_test_split(X, y, train_size=0.5, stratify=y,
                                            random_state=0)
    p_test = clf.predict_proba(X_test)
    in_set = p_test >= 1 - summary["conformal"]["0.8"]["threshold"]
    true_col = np.array([order.index(label) for label in y_test])
    assert summary["conformal"]["0.8"]["coverage"] == pytest.approx(
        in_set[np.arange(len(y_test)), true_col].mean())


def test_scikit_learn_floor_has_temperature_scaling():
    """Issue 21: ``trust_report`` needs ``CalibratedClassifierCV(method=
    "temperature")``, added in scikit-learn 1.8; pyproject admitted 1.6."""
    import re
    import tomllib
    from pathlib import Path

    from leukosk.reports._trust import TEMPERATURE_SCALING_SINCE

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    floors = [re.fullmatch(r"scikit-learn\s*>=\s*(\d+)\.(\d+)(?:\.\d+)?\s*", spec)
              for spec in pyproject["project"]["dependencies"]
              if spec.startswith("scikit-learn")]
    assert len(floors) == 1 and floors[0], "scikit-learn>=X.Y expected in pyproject"
    assert tuple(map(int, floors[0].groups())) >= TEMPERATURE_SCALING_SINCE == (1, 8)


def test_trust_section_says_why_when_it_cannot_be_measured(tmp_path, monkeypatch):
    """Issue 21: without temperature scaling (scikit-learn < 1.8) the trust
    section vanished; now trust_report names the fix and the report says so."""
    import sklearn

    from leukosk.reports import trust_report, write_report

    monkeypatch.setattr(sklearn, "__version__", "1.7.2")
    with pytest.raises(ValueError, match=r"scikit-learn 1\.7\.2 .*temperature.*"
                                         r"pip install 'scikit-learn>=1\.8'"):
        trust_report(object(), np.zeros((8, 4, 4, 3), np.uint8), ["a", "b"] * 4)
    paths = write_report(tmp_path, ["a", "b"], ["a", "a"], trust="no temperature, here")
    text = paths["markdown"].read_text()
    assert "## How far to trust it" in text and "Not measured: no temperature, here" in text
    assert json.loads(paths["json"].read_text())["trust"] == {
        "not_measured": "no temperature, here"}
