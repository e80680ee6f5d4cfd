"""V3's unsureness threshold (issue 28), calibrated as its score's: the PBC
calibration half of ship_v3.py's split, folders of 100; false alarms on the
evaluation half and the bundled sample; each LAB_DIR's folders.

    python benchmarks/calibrate_unsure.py DATA_DIR TECOM_DIR RAABIN_DIR > docs/results/v3_unsure.json
"""
import json
import sys

from sklearn.model_selection import train_test_split
from ship_v4 import flagged, load
from v4_recipe import halves
from leukosk import load_pretrained
from leukosk.datasets import sample_folder
from leukosk.domain import calibrate_lab_shift
clf = load_pretrained("PBC_VGG19BN_W375_64PX_CELL_V3", device="cpu")
data, labs = sys.argv[1], sys.argv[2:]  # DATA_DIR [LAB_DIR...]
pbc = load(data, clf.decode_size_)
_, test = halves(pbc)
cal, ev = train_test_split(test, test_size=0.5, random_state=0, stratify=pbc.target[test])
shift = calibrate_lab_shift(clf, pbc.images[cal], n_images=100, n_folders=200)
out = {"threshold_recomputed": round(shift.threshold, 5), "unsure_threshold": round(shift.unsure_threshold, 5),
       "pbc_evaluation_half": flagged(clf, pbc.images[ev], shift),
       "bundled_sample": flagged(clf, load(sample_folder(), None).images, shift),
       **{lab.rstrip("/").split("/")[-1]: flagged(clf, load(lab, clf.decode_size_).images,
                                                  shift) for lab in labs}}
print(json.dumps(out, indent=1))

