"""Layer 7: the scikit-learn estimator.

:class:`VGG19LeukocyteClassifier` (``_classifier``) and its plumbing: the
parameter table (``_params``), data loading (``_dataset``), optimiser groups
(``_optim``), training checks (``_training``), the device parameter and
unpickling (``_device``), and :func:`load_pretrained` (``_pretrained``).
Public names are re-exported by :mod:`leukosk`.
"""
