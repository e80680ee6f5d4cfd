"""skorch callbacks for leukosk's classifiers.

* :class:`WeightAveraging`: exponential moving average of the weights, used
  for prediction after ``fit``.
* :class:`OneCycle`: the one-cycle learning-rate schedule, sized to the fit.
"""

from ._averaging import WeightAveraging
from ._schedule import OneCycle

__all__ = ["WeightAveraging", "OneCycle"]
