"""
Quickstart: predict with the shipped model, score it, fine-tune it
==================================================================

The model shipped inside leukosk classifies the 160 PBC images bundled with
the package in seconds (they were kept out of its training, so its score
here is honest). Then, as a laboratory would with its own labelled cells, it
is fine-tuned on half of them (:func:`leukosk.protocols.few_shot_classifier`,
about 20 s on two CPU cores) and scored on the other half.

Training from scratch on so few images gives a far weaker model: see
:ref:`sphx_glr_auto_examples_plot_from_scratch.py`, which explains why.
"""

# %%
# The shipped model: a fitted scikit-learn classifier, no download, no training.
from sklearn.model_selection import train_test_split

from leukosk import load_pretrained
from leukosk.datasets import load_pbc_sample

paths, labels = load_pbc_sample(return_paths=True, return_X_y=True)
clf = load_pretrained()
print(clf.predict(paths[:5]))
print(f"shipped model on all 160 bundled images: {clf.score(paths, labels):.1%} "
      "(chance: 12.5%)")

# %%
# Fine-tune it on 80 labelled cells (ten per class), score it on the other 80.
# ``tta=True`` (the recipe's default) averages each prediction over the eight
# reflections and quarter turns of the image.
from leukosk.protocols import few_shot_classifier

X_train, X_test, y_train, y_test = train_test_split(
    paths, labels, test_size=0.5, stratify=labels, random_state=0)
tuned = few_shot_classifier("DEFAULT", max_epochs=10, random_state=0)
tuned.fit(X_train, y_train)
print(f"on the other 80: shipped {clf.score(X_test, y_test):.1%}, "
      f"fine-tuned {tuned.score(X_test, y_test):.1%}")

# %%
# The confusion matrix, with scikit-learn's display.
import matplotlib.pyplot as plt
from sklearn.metrics import ConfusionMatrixDisplay

ConfusionMatrixDisplay.from_estimator(tuned, X_test, y_test, xticks_rotation=45,
                                      colorbar=False)
plt.tight_layout()
plt.show()
