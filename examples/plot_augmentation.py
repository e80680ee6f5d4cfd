"""
Augmentation gallery: random reflection and rotation
=====================================================

The paper's augmentation (Jarjees et al. 2022, Section 2.2 and Fig. 2):
random mirroring and rotation by 0-360 degrees. Below, one cell of each PBC
class from the bundled sample (left column) and five random augmentations of
it. The corners uncovered by a rotation are filled by reflecting the image
(``fill="reflect"``), which continues the pale smear background instead of
painting black corners.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

from leukosk import RandomReflectRotate
from leukosk.datasets import load_pbc_sample

sample = load_pbc_sample(image_size=160)
first_of_each = [np.flatnonzero(sample.target == name)[0]
                 for name in sample.target_names]
cells = sample.images[first_of_each]

# %%
# Five independent draws for each cell. ``augment`` applies one draw to an
# array; during training the classifier draws anew for every batch.
n_views = 5
views = [RandomReflectRotate(random_state=seed).augment(cells)
         for seed in range(n_views)]

fig, axes = plt.subplots(len(cells), n_views + 1,
                         figsize=(1.6 * (n_views + 1), 1.6 * len(cells)))
for row, name in enumerate(sample.target_names):
    for col, image in enumerate([cells[row]] + [v[row] for v in views]):
        ax = axes[row, col]
        ax.imshow(image)
        ax.set_xticks([])
        ax.set_yticks([])
        if col == 0:
            ax.set_ylabel(name, rotation=0, ha="right", va="center")
axes[0, 0].set_title("original")
for col in range(1, n_views + 1):
    axes[0, col].set_title(f"draw {col}")
fig.suptitle("RandomReflectRotate(): mirror + rotation 0-360 degrees")
fig.tight_layout()
plt.show()
