"""
Pipeline and grid search: does augmentation help?
==================================================

:class:`leukosk.RandomReflectRotate` is a pipeline step, so its parameters
can be searched like any other. Here ``GridSearchCV`` compares training
without rotation against the paper's 0-360 degree rotation, with 2-fold
cross-validation on the PBC sample bundled with leukosk. During ``fit`` the
step hands the images to the classifier, which augments every batch afresh;
during ``predict`` and ``score`` images pass unchanged.

CPU-sized: a narrow VGG-19-BN from scratch at 32x32 px, 12 epochs per fit,
on 80 images per fold, so the scores are noisy and low; the point is the
mechanics.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline

from leukosk import RandomReflectRotate, VGG19LeukocyteClassifier
from leukosk.datasets import load_pbc_sample

X, y = load_pbc_sample(image_size=32, return_X_y=True)

pipe = make_pipeline(
    RandomReflectRotate(random_state=0),
    VGG19LeukocyteClassifier(
        weights=None, batch_norm=True, module__hidden_units=256, image_size=32,
        lr=1e-3, head_lr_multiplier=1.0, optimizer__weight_decay=5e-4,
        batch_size=16, max_epochs=12, random_state=0, verbose=0),
)
search = GridSearchCV(
    pipe,
    {"randomreflectrotate__degrees": [(0, 0), (0, 360)]},
    cv=StratifiedKFold(2, shuffle=True, random_state=0),
    refit=False,  # only the cross-validated scores are shown
)
search.fit(X, y)

# %%
# Mean and spread of the held-out accuracy of each setting.
results = search.cv_results_
labels = ["mirror only", "mirror + 0-360 rotation"]
means, stds = results["mean_test_score"], results["std_test_score"]
for label, m, s in zip(labels, means, stds):
    print(f"{label:>24}: {m:.3f} +/- {s:.3f}")

fig, ax = plt.subplots(figsize=(5, 3), layout="constrained")
ax.bar(labels, means, yerr=stds, color=["0.7", "C0"], capsize=4)
ax.axhline(1 / 8, color="red", lw=1, ls="--", label="chance")
ax.set_ylabel("2-fold CV accuracy")
ax.set_ylim(0, max(0.5, float(np.max(means + stds)) + 0.05))
ax.legend()
plt.show()
