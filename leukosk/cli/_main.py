"""The ``leukosk`` command line: parse the arguments, run the command, and turn
what it raises into one line and an exit status.

Commands: ``demo``, ``train``, ``evaluate``, ``predict``, ``explain``,
``count``, ``adapt``, ``reproduce`` (parsers in ``_parser``, commands in
``_commands``; each calls the library).

Bad arguments or data end with a one-line reason on stderr and a non-zero
exit status: 2 for usage errors, 130 when interrupted (Ctrl-C), 141 when the
reader of the output went away, 1 for everything else. No command replaces
a good result with a partial one.
"""

import os
import signal
import sys
import warnings

from ..utils._output import printable
from ._commands import Interrupted
from ._parser import EXTRAS, build_parser

__all__ = ["main", "build_parser", "check_extras", "EXTRAS"]


def check_extras(command):
    """Raise ImportError naming the install if ``command``'s extra is missing.

    Parameters
    ----------
    command : str
        A command of ``leukosk`` (a key of :data:`EXTRAS`).

    Examples
    --------
    >>> from leukosk.cli._main import check_extras
    >>> check_extras("predict")  # needs nothing beyond leukosk itself
    """
    import importlib.util

    extra, modules = EXTRAS.get(command, (None, ()))
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"needs {', '.join(missing)}, which is not installed: "
                          f"pip install \"leukosk[{extra}]\" (or, from a copy of "
                          f"the repository, pip install -e \".[{extra}]\")")


def _format_warning(message, category, *args, **kwargs):
    """Warnings as one plain line: a terminal user needs no source location."""
    return f"leukosk: warning: {printable(str(message))}\n"


def _one_line(exc):
    return printable(" ".join(line.strip() for line in str(exc).splitlines())
                     or type(exc).__name__)


def main(argv=None):
    """Entry point of the ``leukosk`` command; returns the exit status.

    0 on success, 2 for usage errors (from argparse), 130 when interrupted,
    1 for anything else, always with one line on stderr and no traceback
    (set ``LEUKOSK_TRACEBACK=1`` to see one for an unexpected error).
    """
    args = build_parser().parse_args(argv)
    original_format = warnings.formatwarning
    warnings.formatwarning = _format_warning  # restored below
    try:
        check_extras(args.command)
        status = args.func(args)
        sys.stdout.flush()  # here, where a closed pipe is handled below
        return status
    except Interrupted as exc:
        print(f"leukosk {args.command}: interrupted: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"leukosk {args.command}: interrupted; nothing was written.",
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. leukosk predict ... | head -1: the reader is gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except (ValueError, TypeError, OSError, ImportError, RuntimeError,
            MemoryError) as exc:
        print(f"leukosk {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - a bug: one line, traceback on request
        if os.environ.get("LEUKOSK_TRACEBACK"):
            raise
        print(f"leukosk {args.command}: unexpected error ({type(exc).__name__}): "
              f"{_one_line(exc)}. Set LEUKOSK_TRACEBACK=1 to see where, and "
              "please report it.", file=sys.stderr)
        return 1
    finally:
        warnings.formatwarning = original_format
