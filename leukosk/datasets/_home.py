"""Where leukosk keeps downloaded data and caches."""

import os
from pathlib import Path

__all__ = ["get_data_home"]


def get_data_home(data_home=None):
    """The leukosk data folder, created if needed.

    ``data_home`` if given, else ``$LEUKOSK_DATA``, else ``~/leukosk_data``
    (as scikit-learn's ``get_data_home`` does with ``SCIKIT_LEARN_DATA``).

    Parameters
    ----------
    data_home : str, path-like or None

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import tempfile
    >>> from leukosk.datasets import get_data_home
    >>> with tempfile.TemporaryDirectory() as d:
    ...     get_data_home(d).is_dir()
    True
    """
    if data_home is None:
        data_home = os.environ.get("LEUKOSK_DATA", Path("~") / "leukosk_data")
    path = Path(data_home).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path
