"""Pages generated at build time (from ``conf.py``), so that they cannot lag.

- ``_generated/cli_reference.inc``: every command and option of ``leukosk``,
  from the argument parser itself (what ``--help`` prints).
- ``_generated/results_table.inc``: the provenance table, one row per result
  record in ``results/*.json``.

Both are included by the pages (``.. include::``); ``.inc`` files are not
pages of their own.
"""

import json
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
GENERATED = HERE / "_generated"

#: Keys every record of ``results/*.json`` must have, in the table's order.
RESULT_FIELDS = ("model", "data", "split", "n", "tta", "machine", "accuracy",
                 "macro_f1", "source")


def _literal(text):
    return "\n".join(("   " + line).rstrip() for line in text.rstrip().splitlines())


def _subcommands(parser):
    import argparse

    for action in parser._actions:  # argparse offers no public accessor
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            return [(name, helps.get(name, ""), sub)
                    for name, sub in action.choices.items()]
    return []


def cli_reference():
    """reStructuredText for every ``leukosk`` command, from its parser."""
    from leukosk.cli._main import EXTRAS, build_parser

    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "88"  # argparse wraps help at the terminal's width
    try:
        parser = build_parser()
        commands = _subcommands(parser)
        lines = [".. list-table::", "   :header-rows: 1", "   :widths: 18 52 30", "",
                 "   * - command", "     - what it does", "     - needs"]
        for name, summary, _ in commands:
            extra = EXTRAS[name][0]
            needs = f'``pip install "leukosk[{extra}]"``' if extra else "leukosk only"
            lines += [f"   * - :ref:`leukosk {name} <cli-{name}>`",
                      f"     - {summary}", f"     - {needs}"]
        lines += ["", "``leukosk --help``", "-" * 18, "", ".. code-block:: text", "",
                  _literal(parser.format_help()), ""]
        for name, _, sub in commands:
            title = f"``leukosk {name}``"
            lines += [f".. _cli-{name}:", "", title, "-" * len(title), "",
                      ".. code-block:: text", "", _literal(sub.format_help()), ""]
    finally:
        if columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = columns
    return "\n".join(lines) + "\n"


def load_results(folder=HERE / "results"):
    """The results files of ``folder/*.json``: ``(title, records)`` in the
    order of their ``order`` key. A results file is an object with a
    ``title``, an ``order`` and a ``results`` list of records (other JSON
    files there are reports); each record has every key of
    :data:`RESULT_FIELDS`; ``balanced_accuracy`` is optional, and ``None``
    prints as a dash."""
    tables = []
    for path in sorted(Path(folder).glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(document, dict) or "results" not in document:
            continue  # a report, not a results file
        for record in document["results"]:
            missing = [key for key in RESULT_FIELDS if key not in record]
            if missing:
                raise ValueError(f"{path.name}: a record lacks {missing}: {record}")
        tables.append((document.get("order", 100), document["title"],
                       document["results"]))
    return [(title, records) for _, title, records in sorted(tables, key=lambda t: t[0])]


def _percent(value):
    return "\\-" if value is None else f"{100 * value:.1f} %"


def _number(value):
    return "\\-" if value is None else f"{value:.3f}"


def results_table(tables=None):
    """reStructuredText of the provenance tables: one row per record."""
    tables = load_results() if tables is None else tables
    lines = []
    for title, records in tables:
        lines += [f".. list-table:: {title}", "   :header-rows: 1", "",
                  "   * - model or recipe", "     - data and split", "     - n",
                  "     - TTA", "     - machine", "     - accuracy", "     - macro-F1",
                  "     - balanced accuracy", "     - measured with"]
        for r in records:
            lines += [f"   * - {r['model']}", f"     - {r['data']}; {r['split']}",
                      f"     - {r['n']:,}", f"     - {'yes' if r['tta'] else 'no'}",
                      f"     - :ref:`{r['machine']} <machine-{r['machine']}>`",
                      f"     - {_percent(r['accuracy'])}",
                      f"     - {_number(r['macro_f1'])}",
                      f"     - {_percent(r.get('balanced_accuracy'))}",
                      f"     - ``{r['source']}``"]
        lines.append("")
    return "\n".join(lines)


def write_all():
    """Write every generated include file; called by ``conf.py``."""
    GENERATED.mkdir(exist_ok=True)
    for name, text in (("cli_reference.inc", cli_reference()),
                       ("results_table.inc", results_table())):
        path = GENERATED / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
