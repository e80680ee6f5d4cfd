"""Layer 2: training augmentations that run batched on the training device.

The paper's random reflection and rotation and the 8 square symmetries of
test-time augmentation (``_augment``); the lab-shift augmenters and their
chain (``_labshift``). Public names are re-exported by :mod:`leukosk`.
"""
