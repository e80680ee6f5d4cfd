"""The ``leukosk`` command (the top layer): argument parsing, then library calls.

``leukosk.cli.main`` is the console script and ``build_parser`` its parser.
Inside: ``_parser`` (what each command takes), ``_commands`` (what each does,
by calling the library), ``_main`` (the exit statuses and error lines) and
``_demo`` (the first-run demo). Like any user, the command line imports the
library's public names only (``tests/test_cli_thin.py`` checks it).
"""

from ._main import build_parser, main

__all__ = ["main", "build_parser"]
