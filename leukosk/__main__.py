"""``python -m leukosk``: the same as the ``leukosk`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
