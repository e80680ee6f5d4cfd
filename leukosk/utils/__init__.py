"""Layer 1, the ground floor: checks and conversions every other layer uses.

Image checks and decoding (``_images``), labels (``_labels``), mixed
precision (``_precision``), device choice and seeding (``_runtime``), files
written atomically, tensor files read without pickle, SHA-256 digests and
the clean-up of what killed writers left (``_files``), and
names and paths that are safe to show and write (``_output``). Imports
nothing else of leukosk. Private: the public names are re-exported by
:mod:`leukosk`.
"""
