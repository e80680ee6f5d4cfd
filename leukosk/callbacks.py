"""skorch callbacks for leukosk's classifiers.

* :class:`WeightAveraging`: exponential moving average of the weights, used
  for prediction after ``fit``.
"""

from ._averaging import WeightAveraging

__all__ = ["WeightAveraging"]
