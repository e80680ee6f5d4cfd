"""
Quickstart: fit, predict and score on the bundled PBC sample
=============================================================

Train :class:`leukosk.VGG19LeukocyteClassifier` on file paths of the 160 PBC
images that ship with leukosk, predict the held-out quarter and draw the
confusion matrix.

This runs on two CPU cores in about a minute, so it trains from scratch
(``weights=None``) a VGG-19 with batch normalisation and narrow (256-unit)
hidden layers at 32x32 px. With ImageNet weights and the full dataset, the
defaults (``VGG19LeukocyteClassifier()``) are the paper's recipe.
"""

# %%
# Load the sample as paths: images are decoded batch by batch during training.
from sklearn.model_selection import train_test_split

from leukosk import VGG19LeukocyteClassifier
from leukosk.datasets import load_pbc_sample

paths, labels = load_pbc_sample(return_paths=True, return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    paths, labels, test_size=0.25, stratify=labels, random_state=0)
print(f"{len(X_train)} training and {len(X_test)} test images")

# %%
# Fit. ``verbose=0`` hides the per-epoch table; ``history_`` keeps it.
clf = VGG19LeukocyteClassifier(
    weights=None, batch_norm=True, module__hidden_units=256, image_size=32,
    lr=1e-3, head_lr_multiplier=1.0, optimizer__weight_decay=5e-4,
    batch_size=16, max_epochs=20, random_state=0, verbose=0)
clf.fit(X_train, y_train)
print("final training loss:", round(clf.history_[-1, "train_loss"], 3))

# %%
# Predict and score: labels come back as the class names.
print(clf.predict(X_test[:5]))
print(f"test accuracy: {clf.score(X_test, y_test):.1%} (chance: 12.5%)")

# %%
# The confusion matrix, with scikit-learn's display.
import matplotlib.pyplot as plt
from sklearn.metrics import ConfusionMatrixDisplay

ConfusionMatrixDisplay.from_estimator(clf, X_test, y_test, xticks_rotation=45,
                                      colorbar=False)
plt.tight_layout()
plt.show()
