"""The ``leukosk`` command (the top layer): argument parsing, then library calls.

``leukosk.cli.main`` is the console script; ``_main`` holds the parsers and
the commands, ``_demo`` the first-run demo.
"""

from ._main import build_parser, main

__all__ = ["main", "build_parser"]
