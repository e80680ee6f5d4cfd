"""Figures in the style of the paper: Fig. 5 (confusion matrix), Fig. 6 (curves).

matplotlib is imported inside the functions, so ``leukosk`` works without it;
the error names the extra to install.
"""

import numpy as np
from sklearn.metrics import confusion_matrix

__all__ = ["plot_confusion_matrix", "plot_training_curves"]

_GOOD, _BAD, _MARGIN, _CORNER = "#b9e3c0", "#f4c1b9", "#ececec", "#c9d7f0"


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("figures need matplotlib: pip install 'leukosk[plot]'") from exc
    return plt


def _pct(x):
    return f"{100 * x:.1f}%"


def _rate(hits, n):
    """A margin's two lines: the rate and its complement; NaN% (as MATLAB
    prints it) when nothing was predicted as, or belongs to, the class."""
    if n == 0:
        return ["NaN%", "NaN%"]
    return [_pct(hits / n), _pct(1 - hits / n)]


def _cell(ax, row, col, color, lines, colors=("black",)):
    """One square of the grid with one or two centred lines of text."""
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, facecolor=color,
                           edgecolor="white", lw=1.5))
    offsets = np.linspace(-0.17, 0.17, len(lines)) if len(lines) > 1 else [0.0]
    for text, dy, c in zip(lines, offsets, list(colors) * len(lines)):
        ax.text(col, row + dy, text, ha="center", va="center", color=c, fontsize=8)


def plot_confusion_matrix(y_true, y_pred, *, labels=None, ax=None, title=None):
    """Confusion matrix in the style of the paper's Fig. 5 (MATLAB plotconfusion).

    Rows are the output (predicted) class and columns the target (true) class.
    Each cell shows the count and its share of all images; the right column
    gives each predicted class's precision (and error), the bottom row each
    true class's recall (and error), the corner the overall accuracy. A rate
    with nothing to divide by (a class never predicted, or absent from
    ``y_true``) shows ``NaN%``, as in MATLAB.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
    labels : array-like, default=None
        Class order; default the sorted union of both.
    ax : matplotlib Axes, default=None
    title : str, default=None

    Returns
    -------
    fig : matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from leukosk.reports import plot_confusion_matrix
    >>> fig = plot_confusion_matrix(["a", "a", "b"], ["a", "b", "b"])
    >>> type(fig).__name__
    'Figure'
    """
    plt = _pyplot()
    labels = np.unique(np.concatenate([np.asarray(y_true), np.asarray(y_pred)])) \
        if labels is None else np.asarray(labels)
    counts = confusion_matrix(y_true, y_pred, labels=labels).T  # rows: output
    n, total = len(labels), counts.sum()
    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 * n + 2.5, 1.0 * n + 2.2), layout="constrained")
    for row in range(n):
        for col in range(n):
            color = _GOOD if row == col else (_BAD if counts[row, col] else "white")
            _cell(ax, row, col, color, [str(counts[row, col]),
                                        _pct(counts[row, col] / max(total, 1))])
    hits = np.diag(counts)
    for i in range(n):
        _cell(ax, i, n, _MARGIN, _rate(hits[i], counts[i].sum()), ("green", "red"))
        _cell(ax, n, i, _MARGIN, _rate(hits[i], counts[:, i].sum()), ("green", "red"))
    accuracy = np.trace(counts) / max(total, 1)
    _cell(ax, n, n, _CORNER, [_pct(accuracy), _pct(1 - accuracy)], ("green", "red"))
    ax.set_xlim(-0.5, n + 0.5)
    ax.set_ylim(n + 0.5, -0.5)
    ax.set_xticks(range(n), [str(label) for label in labels], rotation=45, ha="right")
    ax.set_yticks(range(n), [str(label) for label in labels])
    ax.set_xlabel("Target Class")
    ax.set_ylabel("Output Class")
    ax.set_aspect("equal")
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(title or f"Confusion matrix: accuracy {_pct(accuracy)}")
    return ax.figure


def _batch_losses(history):
    losses, ends = [], []
    for epoch in history:
        losses += [b["train_loss"] for b in epoch["batches"] if "train_loss" in b]
        ends.append(len(losses))
    return np.asarray(losses), np.asarray(ends)


def _smooth(values, window):
    if len(values) < window or window < 2:
        return values
    kernel = np.ones(window) / window
    return np.convolve(np.pad(values, (window - 1, 0), mode="edge"), kernel, "valid")


def plot_training_curves(history, *, smooth=None):
    """Training progress in the style of the paper's Fig. 6: accuracy and loss.

    The x axis is the iteration (mini-batch). Training loss is drawn per
    iteration (faint) and smoothed; training accuracy per epoch; validation
    accuracy and loss, when the fit had validation, at each epoch's last
    iteration (dashed, as MATLAB draws them).

    Parameters
    ----------
    history : skorch.history.History or list of dict
        ``clf.history_`` of a fitted :class:`~leukosk.VGG19LeukocyteClassifier`.
    smooth : int, default=None
        Moving-average window for the loss; default a tenth of an epoch.

    Returns
    -------
    fig : matplotlib.figure.Figure
        Two panels: (a) accuracy, (b) loss.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from leukosk.reports import plot_training_curves
    >>> history = [{"epoch": 1, "train_acc": 0.5, "train_loss": 1.0,
    ...             "batches": [{"train_loss": 1.2}, {"train_loss": 0.8}]}]
    >>> plot_training_curves(history).axes[1].get_ylabel()
    'Loss'
    """
    plt = _pyplot()
    history = list(history)
    if not history:
        raise ValueError("the history is empty: fit the classifier first.")
    losses, ends = _batch_losses(history)
    iterations = np.arange(1, len(losses) + 1)
    window = smooth or max(1, int(round(len(losses) / len(history) / 10)))
    fig, (acc_ax, loss_ax) = plt.subplots(2, 1, figsize=(8, 6), sharex=True,
                                          layout="constrained")
    for key, label, style in (("train_acc", "Training", "-o"),
                              ("valid_acc", "Validation", "--o")):
        values = [100 * epoch[key] for epoch in history if key in epoch]
        if values:
            acc_ax.plot(ends[: len(values)], values, style, label=label)
    acc_ax.set_ylabel("Accuracy (%)")
    acc_ax.set_title("(a) accuracy")
    acc_ax.legend(loc="lower right")
    loss_ax.plot(iterations, losses, color="C0", alpha=0.25, lw=0.8)
    loss_ax.plot(iterations, _smooth(losses, window), color="C0", label="Training")
    valid = [epoch["valid_loss"] for epoch in history if "valid_loss" in epoch]
    if valid:
        loss_ax.plot(ends[: len(valid)], valid, "--o", color="C1", label="Validation")
    loss_ax.set_xlabel("Iteration")
    loss_ax.set_ylabel("Loss")
    loss_ax.set_title("(b) loss")
    loss_ax.legend(loc="upper right")
    for end in ends[:-1]:
        for axis in (acc_ax, loss_ax):
            axis.axvline(end + 0.5, color="0.85", lw=0.8, zorder=0)
    return fig
