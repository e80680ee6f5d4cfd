"""The demo job: the shipped model on the bundled PBC sample, then the review loop.

First the shipped model classifies the 160 bundled images (seconds). Then
what a laboratory does next: the differential count of a sample of 80 of
them with its review page (``leukosk-demo/review/index.html``), and the
model adapted on the corrections of a review of the other 80 (their true
classes stand in for a technologist's), scored on the 80 of the page.
"""

import csv
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.model_selection import train_test_split

__all__ = ["run_shipped_demo", "format_shipped_report", "run_review_demo",
           "format_review_report"]


def run_shipped_demo(out_dir="leukosk-demo", *, weights="DEFAULT", device="auto"):
    """Classify the bundled PBC sample with the model shipped in the package.

    The 160 sample images were kept out of that model's training, so this is
    an honest (if small) test. Takes seconds on a CPU.

    Parameters
    ----------
    out_dir : path-like, default="leukosk-demo"
        Receives ``shipped_confusion_matrix.png`` (and ``.svg``).
    weights : LeukoskWeights or str, default="DEFAULT"
    device : str, default="auto"

    Returns
    -------
    dict
        ``accuracy``, ``n``, ``confusion_matrix``, ``classes``, ``seconds``,
        ``model`` (the member's name), ``figure``.
    """
    from .. import load_model, resolve_model
    from ..datasets import load_pbc_sample
    from ..reports import plot_confusion_matrix, save_figure

    start = time.perf_counter()
    member = resolve_model(weights)
    clf = load_model(member, device=device)
    X, y = load_pbc_sample(return_paths=True, return_X_y=True)
    y_pred = clf.predict(X)
    seconds = time.perf_counter() - start
    accuracy = accuracy_score(y, y_pred)
    figure = save_figure(plot_confusion_matrix(
        y, y_pred, labels=clf.classes_,
        title=f"{member.name} on the bundled PBC sample, accuracy {accuracy:.1%}"),
        Path(out_dir) / "shipped_confusion_matrix.png")
    return {"accuracy": accuracy, "n": len(y), "classes": clf.classes_,
            "confusion_matrix": confusion_matrix(y, y_pred, labels=clf.classes_),
            "seconds": seconds, "model": member.name, "figure": figure}


def format_shipped_report(result):
    """The shipped model's demo as text: accuracy and the Fig. 5-style counts."""
    classes = [str(c) for c in result["classes"]]
    short = [c[:5] for c in classes]
    matrix = result["confusion_matrix"].T  # rows predicted, columns true (Fig. 5)
    lines = [f"Classified the {result['n']} bundled PBC images (unseen in training) with "
             f"the shipped model {result['model']} in {result['seconds']:.0f} s: accuracy "
             f"{result['accuracy']:.1%}.",
             "Confusion matrix (rows: predicted, columns: true class; as the paper's "
             "Fig. 5):",
             "              " + " ".join(f"{s:>6}" for s in short)]
    for name, row in zip(classes, matrix):
        lines.append(f"{name:>13} " + " ".join(f"{v:6d}" for v in row))
    lines.append(f"Figure: {result['figure']}")
    return "\n".join(lines)


def _write_corrections(path, names, predicted, truth):
    """A review's ``corrections.csv``, as the review page downloads it
    (every cell in the one encoding of names, :func:`csv_cell`)."""
    from ..utils._files import atomic_path
    from ..utils._output import csv_cell

    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "model_class", "corrected_class"])
        writer.writerows([csv_cell(str(cell)) for cell in row]
                         for row in zip(names, predicted, truth))
    return path


def _review(out_dir, clf, paths, root):
    """The count of ``paths`` (one sample) and its review page."""
    from ..count import differential_count
    from ..review import display_names, write_review_page
    from ..uncertainty import stored_conformal_sets

    sets = stored_conformal_sets("default")
    count = differential_count(clf, paths, sets=sets)
    page = write_review_page(out_dir, count, paths, clf=clf,
                             names=display_names(paths, root),
                             title="leukosk demo: 80 bundled PBC cells to review")
    return count, page


def run_review_demo(out_dir="leukosk-demo", *, max_epochs=10, random_state=0,
                    device="auto", verbose=1):
    """The review loop on the bundled sample: count, review page, adapt, score.

    The 160 bundled images are split in two stratified halves. One half is
    a sample to count: the shipped model's differential count and its review
    page (``out_dir/review/index.html``). The other half stands for a sample a
    technologist reviewed: its ``corrections.csv`` (the true classes), on
    which :func:`leukosk.corrections.adapt_to_corrections` fine-tunes the
    shipped model (``max_epochs`` epochs; seconds on a CPU, see the README). Both
    models are then scored on the counted half.

    Parameters
    ----------
    out_dir : path-like, default="leukosk-demo"
        Receives ``review/`` (the page), ``corrections.csv``, ``adapted/``
        (the model and its card) and ``confusion_matrix.png`` (and ``.svg``;
        the adapted model on the counted half, in the paper's Fig. 5 style).
    max_epochs : int, default=10
    random_state : int, default=0
        Seeds the split and the fine-tuning.
    device : str, default="auto"
    verbose : int, default=1
        1 prints a line per fine-tuning epoch.

    Returns
    -------
    dict
        ``page``, ``n_cells``, ``n_referred``, ``n_reviewed``, ``n_corrected``,
        ``decision`` (whether the adaptation was kept, and why),
        ``accuracy_shipped``, ``accuracy``, ``macro_f1`` (the adapted model),
        ``fit_seconds``, ``seconds``, ``confusion_matrix``, ``classes``,
        ``figure``, ``model``.
    """
    from .. import load_pretrained
    from ..corrections import adapt_to_corrections, write_adapted_model
    from ..datasets import load_pbc_sample, sample_folder
    from ..reports import plot_confusion_matrix, save_figure
    from ..review import display_names

    start, out = time.perf_counter(), Path(out_dir)
    paths, y = load_pbc_sample(return_paths=True, return_X_y=True)
    reviewed, counted = train_test_split(np.arange(len(y)), test_size=0.5, stratify=y,
                                         random_state=random_state)
    shipped = load_pretrained(device=device)
    count, page = _review(out / "review", shipped, list(paths[counted]), sample_folder())
    names = display_names(list(paths[reviewed]), sample_folder())
    corrections = _write_corrections(out / "corrections.csv", names,
                                     shipped.predict(paths[reviewed]), y[reviewed])
    fit_start = time.perf_counter()
    adapted = adapt_to_corrections("DEFAULT", corrections, images=sample_folder(),
                                   max_epochs=max_epochs, random_state=random_state,
                                   device=device, verbose=verbose)
    fit_seconds = time.perf_counter() - fit_start
    model = write_adapted_model(adapted, out / "adapted")
    y_pred = adapted.predict(paths[counted])
    accuracy = accuracy_score(y[counted], y_pred)
    figure = save_figure(plot_confusion_matrix(
        y[counted], y_pred, labels=adapted.classes_,
        title=f"leukosk demo: adapted model on 80 bundled cells, accuracy {accuracy:.1%}"),
        out / "confusion_matrix.png")
    return {"page": page, "n_cells": count.n_cells, "n_referred": len(count.referred),
            "n_reviewed": len(reviewed), "n_corrected": adapted.card_["n_corrected"],
            "decision": adapted.card_["decision"],
            "accuracy_shipped": accuracy_score(y[counted], count.labels),
            "accuracy": accuracy,
            "macro_f1": f1_score(y[counted], y_pred, average="macro"),
            "fit_seconds": fit_seconds, "seconds": time.perf_counter() - start,
            "confusion_matrix": confusion_matrix(y[counted], y_pred,
                                                 labels=adapted.classes_),
            "classes": adapted.classes_, "figure": figure, "model": model}


def format_review_report(result):
    """Human-readable summary of :func:`run_review_demo`'s result."""
    return "\n".join([
        f"Counted a sample of {result['n_cells']} bundled cells with the shipped model "
        f"({result['n_referred']} referred to an expert). Open its review page, "
        "click a cell to correct it, download corrections.csv:",
        f"    {result['page']}",
        f"Adapted the shipped model to the review of {result['n_reviewed']} other "
        f"cells ({result['n_corrected']} corrections; their true classes stand in "
        f"for a technologist's) in {result['fit_seconds']:.0f} s; "
        f"{result['decision']}.",
        f"On the {result['n_cells']} cells of the page: adapted model "
        f"{result['accuracy']:.1%} (macro-F1 {result['macro_f1']:.3f}), shipped model "
        f"{result['accuracy_shipped']:.1%}.",
        f"Confusion matrix: {result['figure']}",
        f"Adapted model: {result['model']} (count with it: leukosk count "
        f"{Path(result['model']).parent} FOLDER --out DIR)",
    ])
