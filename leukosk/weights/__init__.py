"""Layer 4: where a network's starting tensors come from.

ImageNet weights through torchvision's weights API, the torch hub cache or a
local file (``_imagenet``), and the models shipped inside the package with
their metadata and SHA-256 (``_shipped``). Builds no estimator: a fitted
classifier from a shipped model is :func:`leukosk.load_pretrained`.
"""
