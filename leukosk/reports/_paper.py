"""The results Jarjees, Sheet & Ahmed (2022) report, for side-by-side tables.

Transcribed from the paper's Fig. 5 (MATLAB ``plotconfusion``): rows are the
output (predicted) class, columns the target (true) class, 364 test images per
class, 2,912 in all; overall accuracy 98.1 %.
"""

import numpy as np

from ..datasets._classes import PBC_CLASSES

__all__ = ["PAPER_CLASSES", "PAPER_CONFUSION", "PAPER_ACCURACY", "paper_metrics"]

#: The paper's classes: PBC's eight, in the same order.
PAPER_CLASSES = PBC_CLASSES

#: Fig. 5 counts, rows = predicted class, columns = true class.
PAPER_CONFUSION = np.array([
    [359, 0, 0, 1, 0, 1, 1, 0],
    [0, 364, 0, 0, 0, 0, 0, 0],
    [0, 0, 357, 1, 0, 0, 0, 0],
    [5, 0, 1, 341, 0, 1, 12, 0],
    [0, 0, 5, 1, 361, 1, 0, 0],
    [0, 0, 1, 14, 2, 361, 0, 0],
    [0, 0, 0, 6, 1, 0, 351, 0],
    [0, 0, 0, 0, 0, 0, 0, 364],
])

#: Overall test accuracy stated in the paper (Fig. 5 corner, Section 3).
PAPER_ACCURACY = 0.981


def paper_metrics():
    """Per-class precision, recall and F1 implied by the paper's Fig. 5.

    Returns
    -------
    dict
        ``{class: {"precision", "recall", "f1", "support"}}`` plus
        ``"accuracy"``, ``"balanced_accuracy"`` and ``"macro_f1"``.

    Examples
    --------
    >>> from leukosk.reports import paper_metrics
    >>> m = paper_metrics()
    >>> round(m["accuracy"], 3), round(m["ig"]["recall"], 3)
    (0.981, 0.937)
    """
    counts = PAPER_CONFUSION
    correct = np.diag(counts)
    precision = correct / counts.sum(axis=1)
    recall = correct / counts.sum(axis=0)
    f1 = 2 * precision * recall / (precision + recall)
    metrics = {
        name: {"precision": float(p), "recall": float(r), "f1": float(f),
               "support": int(s)}
        for name, p, r, f, s in zip(PAPER_CLASSES, precision, recall, f1,
                                    counts.sum(axis=0))
    }
    metrics["accuracy"] = float(correct.sum() / counts.sum())
    metrics["balanced_accuracy"] = float(recall.mean())
    metrics["macro_f1"] = float(f1.mean())
    return metrics
