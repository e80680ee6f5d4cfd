"""Pages generated at build time (from ``conf.py``), so that they cannot lag.

- ``_generated/cli_reference.inc``: every command and option of ``leukosk``,
  from the argument parser itself (what ``--help`` prints).
- ``_generated/results_table.inc``: the provenance table, one row per result
  record in ``results/*.json``, each row the target ``result-ID`` of its
  record's id.
- ``_generated/results_substitutions.inc``: for every record, the
  substitutions ``|ID:acc|`` (accuracy), ``|ID:f1|`` (macro-F1),
  ``|ID:bal|`` (balanced accuracy), ``|ID:sd|`` (sd over draws),
  ``|ID:accsd|`` and ``|ID:balsd|`` (mean ± sd over draws), ``|ID:n|``,
  ``|ID:NAME|`` for each of the record's other ``rates`` (a percentage) and
  ``values`` (a number), and ``|ID:cite|`` (a short line naming model, data,
  split, n, TTA and machine, linked to the record's row); ``conf.py`` puts them in
  ``rst_prolog``, so every page can quote a record instead of retyping it.
- The ``.. results:: ID ...`` directive: the provenance table's rows of
  those records, for a page that shows a few of them.
- The block of README.md between ``<!-- results:begin -->`` and
  ``<!-- results:end -->``, from the records (``python docs/_generate.py
  --readme`` rewrites it; a test checks it is current).

The table and the substitutions are included by the pages (``.. include::``);
``.inc`` files are not pages of their own. The records follow one schema,
``benchmarks/_records.py``, the module the benchmarks write them with.
"""

import json
import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
GENERATED = HERE / "_generated"
README = HERE.parent / "README.md"

sys.path.insert(0, str(HERE.parent / "benchmarks"))
try:
    import _records  # noqa: E402  (benchmarks/_records.py: the schema and the writer)
finally:
    sys.path.remove(str(HERE.parent / "benchmarks"))

#: Keys every record of ``results/*.json`` must have, in the table's order.
RESULT_FIELDS = tuple(key for key, (required, _, _) in _records.RECORD_SCHEMA.items()
                      if required)


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
    files there are reports); each record follows
    ``_records.RECORD_SCHEMA`` (checked here: the build fails on a bad
    record); ``None`` prints as a dash."""
    tables = []
    for document in _records.validate_folder(folder).values():
        tables.append((document.get("order", 100), document["title"],
                       document["results"]))
    return [(title, records) for _, title, records in sorted(tables, key=lambda t: t[0])]


def _points(fraction):
    """A fraction in percentage points, one decimal, rounded half up as a
    reader would (0.9625: 96.3, not the 96.2 of binary floating point)."""
    from decimal import ROUND_HALF_UP, Decimal

    return str((Decimal(repr(fraction)) * 100).quantize(Decimal("0.1"), ROUND_HALF_UP))


def _percent(value):
    return "\\-" if value is None else f"{_points(value)} %"


def _number(value):
    from decimal import ROUND_HALF_UP, Decimal

    return "\\-" if value is None else str(Decimal(repr(value)).quantize(
        Decimal("0.001"), ROUND_HALF_UP))


def _value(value):
    """A number of a record's ``values`` as it is stored (1,234; 0.91)."""
    from decimal import Decimal

    return f"{value:,}" if isinstance(value, int) else str(Decimal(repr(value)))


def _mean_sd(mean, sd):
    return _percent(mean) if sd is None else f"{_points(mean)} ± {_points(sd)} %"


def _others(r):
    """A record's other rates and values, as one line of the table."""
    return "; ".join([f"{name} {_percent(v)}" for name, v in r.get("rates", {}).items()]
                     + [f"{name} {_value(v)}" for name, v in r.get("values", {}).items()])


def _header(title, widths=None):
    lines = [f".. list-table:: {title}".rstrip(), "   :header-rows: 1"]
    if widths:
        lines.append(f"   :widths: {widths}")
    return lines + ["", "   * - model or recipe", "     - data and split", "     - n",
                    "     - TTA", "     - machine", "     - accuracy", "     - macro-F1",
                    "     - balanced accuracy", "     - other figures",
                    "     - measured with"]


def _row(r, target=True):
    first = [f"   * - .. _result-{r['id']}:", "", f"       {r['model']}"] if target \
        else [f"   * - :ref:`{r['model']} <result-{r['id']}>`"]
    accuracy = "\\-" if r["accuracy"] is None else _mean_sd(r["accuracy"],
                                                              r.get("accuracy_std"))
    balanced = "\\-" if r.get("balanced_accuracy") is None else \
        _mean_sd(r["balanced_accuracy"], r.get("balanced_accuracy_std"))
    return first + [
        f"     - {r['data']}; {r['split']}", f"     - {r['n']:,}",
        f"     - {'yes' if r['tta'] else 'no'}",
        f"     - :ref:`{r['machine']} <machine-{r['machine']}>`",
        f"     - {accuracy}", f"     - {_number(r['macro_f1'])}", f"     - {balanced}",
        f"     - {_others(r) or chr(92) + '-'}",
        f"     - ``{r['source']}``" + (f" ({r['date']})" if r.get("date") else "")
        + (f". {r['note']}" if r.get("note") else "")]


def results_table(tables=None):
    """reStructuredText of the provenance tables: one row per record, each
    the target ``result-ID``."""
    tables = load_results() if tables is None else tables
    lines = []
    for title, records in tables:
        lines += _header(title)
        for r in records:
            lines += _row(r)
        lines.append("")
    return "\n".join(lines)


def records_by_id(tables=None):
    """``{id: record}`` over every results file."""
    tables = load_results() if tables is None else tables
    return {r["id"]: r for _, records in tables for r in records}


def citation(r):
    """A record's figure with everything it needs to be read: model, data,
    split, n, TTA, machine."""
    bal = r.get("balanced_accuracy")
    figure = "" if r["accuracy"] is None else \
        _mean_sd(r["accuracy"], r.get("accuracy_std")) + " "
    extra = [] if bal is None else \
        [f"balanced accuracy {_mean_sd(bal, r.get('balanced_accuracy_std'))}"]
    if r["macro_f1"] is not None:
        extra.append(f"macro-F1 {_number(r['macro_f1'])}")
    return (f"{figure}({', '.join(extra) + '; ' if extra else ''}{r['model']}; "
            f"{r['data']}, {r['split']}, n = {r['n']:,}; "
            f"{'with' if r['tta'] else 'no'} TTA; {r['machine']})")


def substitutions(tables=None):
    """rst substitution definitions for every record (see the module docstring)."""
    lines = []
    for rid, r in records_by_id(tables).items():
        values = {"n": f"{r['n']:,}", "cite": f":ref:`{citation(r)} <result-{rid}>`"}
        if r["accuracy"] is not None:
            values["acc"] = _percent(r["accuracy"])
            values["accsd"] = _mean_sd(r["accuracy"], r.get("accuracy_std"))
        if r["macro_f1"] is not None:
            values["f1"] = _number(r["macro_f1"])
        if r.get("balanced_accuracy") is not None:
            values["bal"] = _percent(r["balanced_accuracy"])
            values["balsd"] = _mean_sd(r["balanced_accuracy"],
                                       r.get("balanced_accuracy_std"))
        if r.get("accuracy_std") is not None:
            values["sd"] = f"{_points(r['accuracy_std'])} points"
        values.update({k: _percent(v) for k, v in r.get("rates", {}).items()})
        values.update({k: _value(v) for k, v in r.get("values", {}).items()})
        for key, value in values.items():
            lines.append(f".. |{rid}:{key}| replace:: {value}")
    return "\n".join(lines) + "\n"


README_BEGIN, README_END = "<!-- results:begin -->", "<!-- results:end -->"


def readme_results(tables=None):
    """The README's figures of the shipped model, from its records."""
    r = records_by_id(tables)
    test, tta, tecom = r["v4-pbc-test"], r["v4-pbc-test-tta"], r["v4-tecom"]
    raabin = r["v4-raabin-test"]
    return (f"On {test['n']:,} PBC images it never saw (the 20 % side of an 80/20 split)\n"
            f"it scores {_percent(test['accuracy'])} ({_percent(tta['accuracy'])} with "
            f"test-time augmentation), on {raabin['n']} Raabin-WBC images it never saw\n"
            f"{_percent(raabin['accuracy'])}; on a lab it was not trained on "
            f"({tecom['n']} images of the tecom set),\nwith no label and no setting, "
            f"{_percent(tecom['accuracy'])}, and it says so: `leukosk predict` and "
            f"`count`\nwarn when a folder looks like none of its training labs. These "
            f"figures were\nmeasured on the 2-core CPU `{test['machine']}` and are "
            f"generated from the records of the\ndocumentation's provenance table "
            f"(\"Results and their provenance\"), which gives\nevery figure with its "
            f"data, split and machine.")


def readme_with_results(text, tables=None):
    """``text`` (README.md) with its results block regenerated."""
    pattern = re.compile(re.escape(README_BEGIN) + ".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise ValueError(f"README.md has no {README_BEGIN} ... {README_END} block")
    block = f"{README_BEGIN}\n{readme_results(tables)}\n{README_END}"
    return pattern.sub(lambda _: block, text)


def setup(app):
    """The ``results`` directive (``conf.py`` calls this)."""
    from docutils import nodes
    from docutils.parsers.rst import Directive, directives
    from docutils.statemachine import StringList

    class Results(Directive):
        """``.. results:: ID [ID ...]`` with an optional ``:title:``: the
        provenance table's rows of those records, linked to them."""

        required_arguments = 1
        final_argument_whitespace = True
        option_spec = {"title": directives.unchanged}

        def run(self):
            records = records_by_id()
            unknown = [i for i in self.arguments[0].split() if i not in records]
            if unknown:
                raise self.error(f"no result record {unknown}")
            lines = _header(self.options.get("title", ""))
            for rid in self.arguments[0].split():
                lines += _row(records[rid], target=False)
            container = nodes.container()
            self.state.nested_parse(StringList(lines, source="results"), self.content_offset,
                                    container)
            return container.children

    app.add_directive("results", Results)


def write_all():
    """Write every generated include file; called by ``conf.py``."""
    GENERATED.mkdir(exist_ok=True)
    for name, text in (("cli_reference.inc", cli_reference()),
                       ("results_table.inc", results_table()),
                       ("results_substitutions.inc", substitutions())):
        path = GENERATED / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] == ["--readme"]:
        README.write_text(readme_with_results(README.read_text(encoding="utf-8")),
                          encoding="utf-8")
    else:
        write_all()
