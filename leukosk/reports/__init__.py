"""Reports in the paper's style (Fig. 5 confusion matrix, Fig. 6 curves, tables),
and the figures that make predictions trustworthy (reliability diagram,
Grad-CAM overlays, top losses, differential count).

matplotlib is needed for the figures only (``pip install "leukosk[plot]"``).
"""

from ._figures import plot_confusion_matrix, plot_training_curves
from ._paper import PAPER_ACCURACY, PAPER_CLASSES, PAPER_CONFUSION, paper_metrics
from ._report import evaluation_report, report_markdown, save_figure, write_report
from ._trust import (overlay, plot_differential_count, plot_grad_cam,
                     plot_reliability_diagram, plot_top_losses, trust_markdown,
                     trust_report)

__all__ = ["plot_confusion_matrix", "plot_training_curves", "evaluation_report",
           "report_markdown", "write_report", "save_figure", "paper_metrics",
           "PAPER_CONFUSION", "PAPER_CLASSES", "PAPER_ACCURACY", "plot_reliability_diagram",
           "plot_grad_cam", "plot_top_losses", "plot_differential_count", "overlay",
           "trust_report", "trust_markdown"]
