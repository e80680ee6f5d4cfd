"""leukosk: scikit-learn classifiers for white-blood-cell microscope images.

The public API:

* :class:`VGG19LeukocyteClassifier`: ImageNet VGG-19 transfer learning as a
  scikit-learn classifier (skorch), the recipe of Jarjees et al. (2022);
  :class:`LeukocyteVGG` is the network it trains, whose parameters are the
  classifier's ``module__*`` settings.
* :class:`RandomReflectRotate`: the paper's random reflection and rotation,
  applied afresh every epoch on the training device, never at prediction;
  :class:`RandomScaleCrop`, :class:`RandomStainJitter`,
  :class:`RandomColorJitter`, :class:`RandomBlur` and :class:`RandomJPEG`
  model other labs' images; :class:`Augmentations` chains them.
* :class:`LeukoskWeights` and :func:`load_pretrained`: a leukocyte classifier
  trained on PBC, shipped in the package: predict at once, or fine-tune.
  :func:`load_model` loads what a model argument names (a shipped model, a
  model folder or file), as the ``leukosk`` command does; :func:`resolve_model`
  says what that is.
* :class:`WeightsUnavailableError`: raised when pretrained weights are neither
  cached nor downloadable; :class:`NonFiniteLossError` when training
  diverges; :class:`FitInterruptedWarning` when ``fit`` was interrupted.
* :mod:`leukosk.datasets`: ``load_pbc``, ``fetch_pbc``, the bundled sample, and
  ``list_images`` (the image files under folders).
* :mod:`leukosk.model_selection`: the paper's split, duplicate-aware splits.
* :mod:`leukosk.protocols`: the paper's recipe in one call.
* :mod:`leukosk.reports`: Fig. 5 / Fig. 6 style figures and metric tables.
* :mod:`leukosk.uncertainty`, :mod:`leukosk.explain`, :mod:`leukosk.count`:
  calibration and conformal sets, Grad-CAM, the differential count.
* :mod:`leukosk.adapt`: AdaBN for another lab's images.
* :mod:`leukosk.domain`: whether images look like the training lab's (the
  lab-shift score and warning).
* :mod:`leukosk.labs`: a model measured on each lab's labelled folder, before
  and after a review (``evaluate_labs``).

Names are imported on first use (PEP 562), so ``import leukosk`` itself reads
no files beyond its own and does not import torch, skorch or scikit-learn.
"""

import importlib

from ._version import __version__

_LAZY = {
    "VGG19LeukocyteClassifier": ".classifier._classifier",
    "LeukocyteVGG": ".nn._vgg",
    "RandomReflectRotate": ".augmentation._augment",
    "AugmentedImages": ".augmentation._augment",
    "WeightsUnavailableError": ".weights._imagenet",
    "RandomScaleCrop": ".augmentation._labshift",
    "RandomStainJitter": ".augmentation._labshift",
    "RandomColorJitter": ".augmentation._labshift",
    "RandomBlur": ".augmentation._labshift",
    "RandomJPEG": ".augmentation._labshift",
    "Augmentations": ".augmentation._labshift",
    "LeukoskWeights": ".weights._shipped",
    "load_pretrained": ".classifier._pretrained",
    "load_model": ".classifier._pretrained",
    "resolve_model": ".classifier._pretrained",
    "NonFiniteLossError": ".classifier._training",
    "FitInterruptedWarning": ".classifier._training",
}
_SUBMODULES = ("adapt", "callbacks", "count", "datasets", "domain", "explain",
               "labs", "model_selection", "protocols", "reports", "uncertainty")

__all__ = ["VGG19LeukocyteClassifier", "LeukocyteVGG", "RandomReflectRotate", "AugmentedImages",
           "RandomScaleCrop", "RandomStainJitter", "RandomColorJitter", "RandomBlur",
           "RandomJPEG", "Augmentations",
           "LeukoskWeights", "load_pretrained", "load_model", "resolve_model",
           "WeightsUnavailableError",
           "NonFiniteLossError", "FitInterruptedWarning", "__version__"]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'leukosk' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__) | set(_SUBMODULES))
