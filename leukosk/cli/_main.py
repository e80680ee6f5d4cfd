"""The ``leukosk`` command line: parse the arguments, run the command, and turn
what it raises into one line and an exit status.

Commands: ``demo``, ``train``, ``evaluate``, ``predict``, ``explain``,
``count``, ``adapt``, ``reproduce`` (parsers in ``_parser``, commands in
``_commands``; each calls the library).

Exit status, always with a one-line reason on stderr:

* 0: success;
* 2: bad arguments (argparse's usage errors);
* 130: interrupted (Ctrl-C); nothing is left half-written;
* 141: the reader of the output went away (``leukosk predict ... | head -1``);
* 1: anything else. A user error (bad data, a missing file or model, a
  missing optional dependency, weights that cannot be downloaded, memory
  exhausted) reads ``leukosk COMMAND: error: REASON``; any other exception
  (a ``TypeError``, ``RuntimeError``, ``KeyError``...: a bug in leukosk or a
  library it calls) reads ``leukosk COMMAND: unexpected error (TYPE): ...``
  and asks for a report.

Set the environment variable ``LEUKOSK_TRACEBACK=1`` to see the traceback
of any error above its line (the exit status stays the same). No command
replaces a good result with a partial one.
"""

import os
import signal
import sys
import traceback
import warnings

from ..utils._output import printable
from ._commands import Interrupted
from ._parser import EXTRAS, build_parser

__all__ = ["main", "build_parser", "check_extras", "EXTRAS"]

#: Exceptions that report a problem of the user's (data, files, installation,
#: machine), not a bug: one line, no traceback. Checked with
#: :func:`_is_user_error`, which adds the library's own.
USER_ERRORS = (ValueError, OSError, ImportError, MemoryError)


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


def _is_user_error(exc):
    """Whether ``exc`` reports a problem of the user's: :data:`USER_ERRORS`,
    :class:`~leukosk.WeightsUnavailableError` (a ``RuntimeError`` that names
    the download to make) and torch's out-of-memory error (a
    ``RuntimeError``: the batch or the image size is too large for the
    device). Any other ``RuntimeError`` or ``TypeError`` is a bug."""
    if isinstance(exc, USER_ERRORS):
        return True
    from .. import WeightsUnavailableError

    torch = sys.modules.get("torch")
    out_of_memory = getattr(torch, "OutOfMemoryError", ()) if torch else ()
    return isinstance(exc, (WeightsUnavailableError, out_of_memory))


def _show_traceback(exc):
    """Print ``exc``'s traceback on stderr if ``LEUKOSK_TRACEBACK`` is set."""
    if os.environ.get("LEUKOSK_TRACEBACK", "") not in ("", "0"):
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)


def _format_warning(message, category, *args, **kwargs):
    """Warnings as one plain line: a terminal user needs no source location."""
    return f"leukosk: warning: {printable(str(message))}\n"


def _one_line(exc):
    return printable(" ".join(line.strip() for line in str(exc).splitlines())
                     or type(exc).__name__)


def main(argv=None):
    """Entry point of the ``leukosk`` command; returns the exit status.

    0 on success, 2 for usage errors (from argparse), 130 when interrupted,
    141 when the reader of the output went away, 1 for anything else: a user
    error as ``leukosk COMMAND: error: REASON``, a bug (any other exception,
    ``TypeError`` and ``RuntimeError`` included) as ``leukosk COMMAND:
    unexpected error (TYPE): ...`` with a request to report it. Always one
    line on stderr; ``LEUKOSK_TRACEBACK=1`` adds the traceback above it.

    Parameters
    ----------
    argv : list of str, default=None
        The arguments (``sys.argv[1:]`` when None).

    Returns
    -------
    int
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
    except Exception as exc:  # noqa: BLE001 - every error ends as one line
        _show_traceback(exc)
        if _is_user_error(exc):
            print(f"leukosk {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        else:
            print(f"leukosk {args.command}: unexpected error ({type(exc).__name__}): "
                  f"{_one_line(exc).rstrip('.')}. This is a bug in leukosk: please report it, "
                  "with the traceback that LEUKOSK_TRACEBACK=1 shows.", file=sys.stderr)
        return 1
    finally:
        warnings.formatwarning = original_format
