"""Layer 3: what leukosk writes to disk and reads back, without pickle.

Model files (``_model_file``: safetensors + JSON metadata, integrity-checked;
:class:`ModelFileWeights`, a model file used as starting weights) and
training checkpoints (``_checkpoint``). Knows no registry of shipped models
and no network: the network checks a file's settings itself
(:mod:`leukosk.nn._settings`).
"""
