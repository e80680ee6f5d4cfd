"""
Reports in the style of the paper: Fig. 5 and Fig. 6
====================================================

:func:`leukosk.reports.plot_confusion_matrix` draws a confusion matrix the way
the paper's Fig. 5 (MATLAB's ``plotconfusion``) does: rows are the predicted
class, columns the true class, each cell has its count and share of all test
images, the margins hold per-class precision (right) and recall (bottom) and
the corner the overall accuracy. :func:`leukosk.reports.plot_training_curves`
draws accuracy and loss against iteration, as in Fig. 6.
"""

# %%
# First, the paper's own Fig. 5, redrawn from its published counts: the
# margins reproduce the printed 98.1 % and per-class values.
import matplotlib.pyplot as plt
import numpy as np

from leukosk.reports import PAPER_CLASSES, PAPER_CONFUSION, plot_confusion_matrix

y_true, y_pred = [], []
for predicted, row in enumerate(PAPER_CONFUSION):
    for true, count in enumerate(row):
        y_true += [PAPER_CLASSES[true]] * count
        y_pred += [PAPER_CLASSES[predicted]] * count
plot_confusion_matrix(y_true, y_pred, title="Jarjees et al. (2022), Fig. 5 redrawn")
plt.show()

# %%
# Then the training curves of a small model trained here, with a validation
# fraction so that both training and validation appear (CPU-sized: narrow
# VGG-19-BN from scratch, 32 px, on the bundled sample).
from leukosk import RandomReflectRotate, VGG19LeukocyteClassifier
from leukosk.datasets import load_pbc_sample
from leukosk.reports import plot_training_curves

X, y = load_pbc_sample(image_size=32, return_X_y=True)
clf = VGG19LeukocyteClassifier(
    weights=None, batch_norm=True, module__hidden_units=64, image_size=32,
    lr=1e-3, head_lr_multiplier=1.0, optimizer__weight_decay=5e-4,
    batch_size=16, max_epochs=10, validation=0.25,
    augment=RandomReflectRotate(random_state=0), random_state=0, verbose=0)
clf.fit(X, y)
plot_training_curves(clf.history_)
plt.show()
print(f"final validation accuracy: {clf.history_[-1, 'valid_acc']:.3f}")
print("iterations:", int(np.sum([len([b for b in e['batches'] if 'train_loss' in b])
                                 for e in clf.history_])))
