"""Metrics tables (JSON, Markdown) beside the paper's numbers, and report folders."""

import json
from pathlib import Path

import numpy as np
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, classification_report,
                             confusion_matrix)

from ..utils._files import atomic_path
from ..utils._output import printable
from ._paper import paper_metrics

__all__ = ["evaluation_report", "report_markdown", "write_report", "save_figure"]


def evaluation_report(y_true, y_pred, *, labels=None):
    """Per-class precision, recall and F1, macro-F1, balanced accuracy, and the paper's.

    Built on :func:`sklearn.metrics.classification_report`.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
    labels : array-like, default=None
        Class order; default the sorted union of both.

    Returns
    -------
    dict
        ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``n_images``,
        ``per_class`` (class -> precision, recall, f1, support),
        ``confusion_matrix`` (rows true, columns predicted, as scikit-learn),
        ``labels``, and ``paper``: the values of Jarjees et al. (2022) Fig. 5
        for comparison.

    Examples
    --------
    >>> from leukosk.reports import evaluation_report
    >>> r = evaluation_report(["ig", "ig", "platelet"], ["ig", "platelet", "platelet"])
    >>> r["accuracy"], r["per_class"]["ig"]["recall"], round(r["paper"]["accuracy"], 3)
    (0.6666666666666666, 0.5, 0.981)
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labels = np.unique(np.concatenate([y_true, y_pred])) if labels is None \
        else np.asarray(labels)
    table = classification_report(y_true, y_pred, labels=labels, output_dict=True,
                                  zero_division=0)
    per_class = {str(label): {k: table[str(label)][k]
                              for k in ("precision", "recall", "f1-score", "support")}
                 for label in labels}
    for values in per_class.values():
        values["f1"] = values.pop("f1-score")
        values["support"] = int(values["support"])
    return {
        "n_images": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": float(table["macro avg"]["f1-score"]),
        "per_class": per_class,
        "labels": [str(label) for label in labels],
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "paper": paper_metrics(),
    }


def _row(name, ours, paper):
    cells = [name] + [f"{100 * ours[k]:.1f}" for k in ("precision", "recall", "f1")]
    cells += [f"{100 * paper[k]:.1f}" if paper else "" for k in ("precision", "recall", "f1")]
    return "| " + " | ".join(cells) + f" | {ours['support']} |"


def report_markdown(report, *, figures=(), title="Evaluation report"):
    """The report as Markdown: summary, per-class table beside the paper, figures.

    Parameters
    ----------
    report : dict
        From :func:`evaluation_report`.
    figures : sequence of str
        Image paths (relative to the Markdown file) to embed.
    title : str

    Returns
    -------
    str

    Examples
    --------
    >>> from leukosk.reports import evaluation_report, report_markdown
    >>> report = evaluation_report(["ig", "platelet"], ["ig", "ig"])
    >>> print(report_markdown(report).splitlines()[4])
    | accuracy | 50.0 % | 98.1 % |
    """
    paper = report["paper"]
    lines = [
        f"# {title}", "",
        "| metric | this model | paper (Jarjees et al. 2022) |",
        "| --- | --- | --- |",
        f"| accuracy | {100 * report['accuracy']:.1f} % | {100 * paper['accuracy']:.1f} % |",
        f"| macro-F1 | {report['macro_f1']:.3f} | {paper['macro_f1']:.3f} |",
        f"| balanced accuracy | {100 * report['balanced_accuracy']:.1f} % | "
        f"{100 * paper['balanced_accuracy']:.1f} % |",
        f"| test images | {report['n_images']} | 2912 |", "",
        "Per class, in % (paper values from its Fig. 5):", "",
        "| class | precision | recall | F1 | paper precision | paper recall "
        "| paper F1 | support |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [_row(name, values, paper.get(name))
              for name, values in report["per_class"].items()]
    lines.append("")
    lines += [f"![{Path(f).stem}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


def save_figure(fig, path):
    """Write a figure as PNG and SVG, each atomically, and close it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : path-like
        The file name; its suffix is replaced by ``.png`` and ``.svg``.

    Returns
    -------
    pathlib.Path
        The PNG file.

    Examples
    --------
    >>> import pathlib, tempfile, matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from leukosk.reports import save_figure
    >>> with tempfile.TemporaryDirectory() as d:
    ...     png = save_figure(plt.figure(), pathlib.Path(d, "empty"))
    ...     sorted(p.name for p in pathlib.Path(d).iterdir())
    ['empty.png', 'empty.svg']
    """
    import matplotlib.pyplot as plt

    path = Path(path)
    for suffix in (".png", ".svg"):
        with atomic_path(path.with_suffix(suffix)) as tmp:
            fig.savefig(tmp, format=suffix[1:], dpi=130)
    plt.close(fig)
    return path.with_suffix(".png")


def write_report(folder, y_true, y_pred, *, history=None, labels=None,
                 title="Evaluation report", trust=None):
    """Write ``report.json``, ``report.md`` and the figures (PNG and SVG).

    Parameters
    ----------
    folder : path-like
        Created if missing; files in it are replaced atomically.
    y_true, y_pred : array-like
    history : skorch History, default=None
        Adds ``training_curves.png``/``.svg`` (Fig. 6 style).
    labels : array-like, default=None
    title : str
    trust : (dict, dict) or str, default=None
        The output of :func:`trust_report`: its numbers join the JSON under
        ``"trust"``, its section the Markdown, its figures the folder. A
        string says why it could not be measured: the section states it
        (and the JSON's ``"trust"`` is ``{"not_measured": reason}``) rather
        than vanish. None: no section.

    Returns
    -------
    dict of str to pathlib.Path
        ``json``, ``markdown``, ``confusion_matrix`` and, with ``history``,
        ``training_curves``.

    Examples
    --------
    >>> import tempfile, matplotlib
    >>> matplotlib.use("Agg")
    >>> from leukosk.reports import write_report
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     paths = write_report(folder, ["ig", "platelet"], ["ig", "ig"])
    ...     sorted(p.name for p in paths.values())
    ['confusion_matrix.png', 'report.json', 'report.md']
    """
    from ._figures import plot_confusion_matrix, plot_training_curves

    folder = Path(folder)
    report = evaluation_report(y_true, y_pred, labels=labels)
    paths = {"confusion_matrix": save_figure(
        plot_confusion_matrix(y_true, y_pred, labels=report["labels"]),
        folder / "confusion_matrix")}
    if history is not None:
        paths["training_curves"] = save_figure(plot_training_curves(history),
                                                folder / "training_curves")
    figures = [p.name for p in paths.values()]
    extra = ""
    if isinstance(trust, str):
        report["trust"] = {"not_measured": trust}
        extra = f"\n## How far to trust it\n\nNot measured: {printable(trust)}\n"
    elif trust is not None:
        from ._trust import trust_markdown

        summary, trust_figures = trust
        report["trust"] = summary
        for name, fig in trust_figures.items():
            paths[name] = save_figure(fig, folder / name)
        extra = "\n" + trust_markdown(summary)
    paths["json"] = folder / "report.json"
    with atomic_path(paths["json"]) as tmp:
        tmp.write_text(json.dumps(report, indent=2), encoding="utf-8")
    paths["markdown"] = folder / "report.md"
    with atomic_path(paths["markdown"]) as tmp:
        tmp.write_text(report_markdown(report, figures=figures, title=title) + extra,
                       encoding="utf-8")
    return paths
