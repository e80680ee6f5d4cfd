"""Layer 5: the torch module.

:class:`LeukocyteVGG` and its preprocessing inside the network (resize,
crop, normalisation, the cell-centred view) in ``_vgg`` and ``_cellview``;
the bounds of its settings and the check of a model file's settings against
its tensors in ``_settings``. Public names are re-exported by :mod:`leukosk`.
"""
