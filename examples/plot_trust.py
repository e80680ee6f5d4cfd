"""
Predictions a lab can trust: confidence, prediction sets, Grad-CAM, the count
=============================================================================

The model shipped with leukosk classifies the 160 PBC images bundled with the
package (kept out of its training). For a few cells we show the whole path a
hematologist would follow: the predicted class and its probability, the
conformal prediction set (more than one class means "refer to an expert"),
and what the network looked at (Grad-CAM). Then calibration before and after
temperature scaling, and the differential count of the sample.

Everything runs on a CPU in under a minute.
"""

# %%
# The shipped model and the bundled sample (paths; decoded batch by batch).
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from leukosk import LeukoskWeights, load_pretrained
from leukosk.datasets import load_pbc_sample
from leukosk.explain import grad_cam
from leukosk.reports import plot_differential_count, plot_grad_cam
from leukosk.uncertainty import ConformalSets, referred

clf = load_pretrained()
paths, labels = load_pbc_sample(return_paths=True, return_X_y=True)
proba = clf.predict_proba(paths)
predicted = clf.classes_[proba.argmax(1)]
print(f"accuracy on the sample: {np.mean(predicted == labels):.1%}")

# %%
# Prediction sets at 95 %, from the thresholds stored with the model (fitted on
# this sample with MAPIE's split-conformal method; see the trust page for
# coverage measured on held-out data).
sets = ConformalSets(LeukoskWeights.DEFAULT.meta["conformal"]["thresholds"])
in_set = sets.predict_set(proba, 0.95)
refer = referred(in_set)
print(f"{refer.sum()} of {len(refer)} cells referred to an expert")

# %%
# A few cells: the referred ones first, then others.
shown = np.r_[np.flatnonzero(refer)[:3], np.flatnonzero(~refer)[:3]]
cams, _ = grad_cam(clf, [paths[i] for i in shown])
titles = [f"{labels[i]} -> {predicted[i]} ({proba[i].max():.0%})\n"
          f"set: {', '.join(clf.classes_[in_set[i]]) or 'empty'}" for i in shown]
images = [np.asarray(Image.open(paths[i]).convert("RGB")) for i in shown]
plot_grad_cam(images, cams, titles=titles, ncols=3)
plt.show()

# %%
# Calibration: fit a temperature on half of the sample (scikit-learn), compare
# the reliability of the other half before and after.
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import train_test_split

from leukosk.reports import plot_reliability_diagram

cal, test = train_test_split(np.arange(len(labels)), train_size=0.5, stratify=labels,
                             random_state=0)
X = np.asarray(paths)
calibrated = CalibratedClassifierCV(FrozenEstimator(clf), method="temperature").fit(
    X[cal], labels[cal])
plot_reliability_diagram(labels[test], [proba[test], calibrated.predict_proba(X[test])],
                         clf.classes_, labels=["as shipped", "temperature-scaled"],
                         n_bins=10)
plt.show()

# %%
# The differential count of the sample (one sample's cells in a lab), with
# 95 % Wilson intervals and the referred cells listed by file.
from leukosk.count import differential_count

count = differential_count(clf, paths, sets=sets, coverage=0.95)
plot_differential_count(count)
plt.show()
print([row["name"].split("/")[-1] for row in count.referred][:5])
