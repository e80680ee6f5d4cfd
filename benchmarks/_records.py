"""The result records of the provenance table: one schema, one writer.

A benchmark that produces a published number writes it here, in the format
``docs/results/*.json`` holds and ``docs/_generate.py`` renders: one record
per measurement (model, data, split and its size *n*, TTA or not, the
machine's id in the machines table of ``docs/results.rst``, the command,
the date, the metrics). :func:`write_records` validates every record against
:data:`RECORD_SCHEMA` and writes the file atomically, replacing the records
with the same ``id`` and keeping the others, so several scripts can feed one
results file.

No torch here: ``docs/_generate.py`` and the tests import this module too.
"""

import datetime
import json
import os
import platform
import re
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "docs" / "results"
MACHINES_PAGE = ROOT / "docs" / "results.rst"

_NUMBER = (int, float)
_RATE = ("rate", "a fraction in [0, 1], or null where it does not apply")

#: Every key a record may have: ``(required, type, meaning)``. ``accuracy``
#: and the other rates are fractions (0.974, not 97.4). ``source`` is the
#: command that measured the record: a script of ``benchmarks/`` or
#: ``examples/`` with its arguments, or a documented ``leukosk`` command
#: (``leukosk count MODEL SAMPLE_FOLDER``) for a figure that command prints.
RECORD_SCHEMA = {
    "id": (True, "slug", "unique over all results files; the anchor "
                         "result-ID and the substitutions |ID:acc| etc. of the docs"),
    "model": (True, "str", "the model (V1, V2, V3) or the recipe"),
    "data": (True, "str", "the data set (see 'The data' in docs/results.rst)"),
    "split": (True, "str", "the part of it scored"),
    "n": (True, "count", "the number of images scored"),
    "tta": (True, "bool", "test-time augmentation (the 8 square symmetries)"),
    "machine": (True, "machine", "an id of the machines table of docs/results.rst"),
    "accuracy": (True, "rate", "accuracy (mean over draws where there are draws); "
                               "null only in a record of other rates"),
    "macro_f1": (True, "rate", "macro-F1, null where the data lack classes"),
    "source": (True, "command", "the command that measured it: a script of "
                                "benchmarks/ or examples/, or 'leukosk COMMAND ...'"),
    "balanced_accuracy": (False, "rate", "balanced accuracy over the classes present"),
    "accuracy_std": (False, "rate", "sd of the accuracy over draws"),
    "balanced_accuracy_std": (False, "rate", "sd of the balanced accuracy over draws"),
    "rates": (False, "rates", "other fractions measured in the same run on the same "
                              "images, by name (an ECE, a coverage, a referral rate): "
                              "{name: rate}; the substitution |ID:name| gives each"),
    "values": (False, "values", "other numbers of the same run that are not rates (a "
                                "mean set size, minutes of fit): {name: number}"),
    "note": (False, "str", "how the record was established where the run's own "
                           "output was not kept, or what else a reader must know"),
    "date": (False, "date", "YYYY-MM-DD of the measurement (records written by "
                            "write_records have it; older ones predate it)"),
}

#: Substitution keys the generator makes of every record; a name of
#: ``rates`` or ``values`` may not be one of them.
RESERVED_NAMES = {"acc", "accsd", "n", "cite", "f1", "bal", "balsd", "sd"}
_NAME = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")

#: The keys of a results file (an object; other JSON files there are reports).
DOCUMENT_KEYS = {"title": str, "order": int, "description": str, "results": list}

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class RecordError(ValueError):
    """A record or results file that does not follow the schema."""


def machine_ids(page=MACHINES_PAGE):
    """The ids of the machines table (``.. _machine-ID:`` anchors)."""
    return re.findall(r"^\.\. _machine-([\w-]+):", Path(page).read_text(encoding="utf-8"),
                      re.M)


def command_script(command):
    """The script a command names (its first word ending in ``.py``), or None."""
    for word in command.split():
        if word.endswith(".py"):
            return word
    return None


def validate_record(record, machines=None, root=ROOT):
    """Raise :class:`RecordError` unless ``record`` follows :data:`RECORD_SCHEMA`."""
    machines = machine_ids() if machines is None else machines
    if not isinstance(record, dict):
        raise RecordError(f"a record is an object, not {record!r}")
    where = record.get("id", record)
    missing = [k for k, (required, _, _) in RECORD_SCHEMA.items()
               if required and k not in record]
    unknown = sorted(set(record) - set(RECORD_SCHEMA))
    if missing or unknown:
        raise RecordError(f"{where}: missing {missing}, unknown {unknown}")
    for key, value in record.items():
        kind = RECORD_SCHEMA[key][1]
        ok = {"str": lambda v: isinstance(v, str) and v.strip(),
              "slug": lambda v: isinstance(v, str) and _SLUG.match(v),
              "count": lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
              "bool": lambda v: isinstance(v, bool),
              "machine": lambda v: v in machines,
              "rate": lambda v: v is None or (isinstance(v, _NUMBER)
                                              and not isinstance(v, bool) and 0 <= v <= 1),
              "date": lambda v: isinstance(v, str) and _DATE.match(v),
              "command": lambda v: isinstance(v, str) and _command_exists(v, root),
              "rates": lambda v: _named(v, lambda x: 0 <= x <= 1),
              "values": lambda v: _named(v, lambda x: x >= 0),
              }[kind](value)
        if not ok:
            raise RecordError(f"{where}: {key}={value!r} is not a valid {kind} "
                              f"({RECORD_SCHEMA[key][2]})")
    if record["accuracy"] is None and not record.get("rates"):
        raise RecordError(f"{where}: accuracy is required (null only for a record "
                          "of other rates)")
    return record


def _named(mapping, check):
    """A non-empty ``{name: number}`` whose names are slugs (not reserved)."""
    return (isinstance(mapping, dict) and mapping
            and all(isinstance(k, str) and _NAME.match(k) and k not in RESERVED_NAMES
                    and isinstance(v, _NUMBER) and not isinstance(v, bool) and check(v)
                    for k, v in mapping.items()))


def cli_commands(root=ROOT):
    """The commands of the ``leukosk`` command line (the keys of ``EXTRAS`` in
    ``leukosk/cli/_parser.py``), read from its source: no import, no torch."""
    import ast

    tree = ast.parse((Path(root) / "leukosk" / "cli" / "_parser.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and getattr(node.targets[0], "id", None) == "EXTRAS"):
            return set(ast.literal_eval(node.value))
    raise RecordError("leukosk/cli/_parser.py defines no EXTRAS: the commands are unknown")


def _command_exists(command, root):
    """A script of ``benchmarks/`` or ``examples/`` that exists, or
    ``leukosk COMMAND`` with a command of the command line."""
    words = command.split()
    if words[:1] == ["leukosk"]:
        return len(words) > 1 and words[1] in cli_commands(root)
    script = command_script(command)
    return (script is not None and script.split("/")[0] in ("benchmarks", "examples")
            and (Path(root) / script).is_file())


def validate_document(document, machines=None, root=ROOT):
    """Validate a results file's object (title, order, description, results)."""
    for key, kind in DOCUMENT_KEYS.items():
        if not isinstance(document.get(key), kind):
            raise RecordError(f"a results file needs {key!r} ({kind.__name__})")
    unknown = sorted(set(document) - set(DOCUMENT_KEYS))
    if unknown:
        raise RecordError(f"unknown keys of a results file: {unknown}")
    ids = [validate_record(r, machines, root)["id"] for r in document["results"]]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise RecordError(f"ids used twice: {duplicated}")
    return document


def results_files(folder=RESULTS_DIR):
    """``{path: document}`` of the results files of ``folder`` (JSON objects
    with a ``results`` key; the other JSON files there are reports)."""
    files = {}
    for path in sorted(Path(folder).glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(document, dict) and "results" in document:
            files[path] = document
    return files


def validate_folder(folder=RESULTS_DIR, machines=None, root=ROOT):
    """Validate every results file of ``folder``, ids unique across them;
    return ``{path: document}``."""
    machines = machine_ids() if machines is None else machines
    files = results_files(folder)
    seen = {}
    for path, document in files.items():
        try:
            validate_document(document, machines, root)
        except RecordError as exc:
            raise RecordError(f"{path.name}: {exc}") from None
        for record in document["results"]:
            if record["id"] in seen:
                raise RecordError(f"id {record['id']!r} in {path.name} and "
                                  f"{seen[record['id']]}")
            seen[record["id"]] = path.name
    return files


def detect_machine():
    """The machines-table id of this machine, or None if it is not in the table.

    Only the machines the table describes are recognised (a GPU by its name,
    a CPU by its vendor, cores and instruction set); any other machine needs
    its own entry in ``docs/results.rst`` and ``--machine ID``.
    """
    try:
        import torch

        if torch.cuda.is_available():
            return "h200" if "H200" in torch.cuda.get_device_name() else None
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    if "AMD EPYC" not in cpuinfo or os.cpu_count() != 2 or platform.machine() != "x86_64":
        return None
    flags = set(re.search(r"^flags\s*:(.*)$", cpuinfo, re.M)[1].split())
    if "avx512_bf16" in flags:
        return "cpu-avx512bf16"
    return "cpu-avx2" if "avx2" in flags else None


def make_record(id, *, model, data, split, n, tta, accuracy, source, machine,
                macro_f1=None, balanced_accuracy=None, accuracy_std=None,
                balanced_accuracy_std=None, rates=None, values=None, note=None,
                date=None):
    """One record, rates rounded to 4 digits, dated today unless ``date``
    (``date=False``: undated, for a record established after the fact)."""
    def rate(value):
        return None if value is None else round(float(value), 4)

    record = {"id": id, "model": model, "data": data, "split": split, "n": int(n),
              "tta": bool(tta), "machine": machine, "accuracy": rate(accuracy),
              "macro_f1": rate(macro_f1), "source": source}
    if balanced_accuracy is not None:
        record["balanced_accuracy"] = rate(balanced_accuracy)
    if accuracy_std is not None:
        record["accuracy_std"] = rate(accuracy_std)
    if balanced_accuracy_std is not None:
        record["balanced_accuracy_std"] = rate(balanced_accuracy_std)
    if rates:
        record["rates"] = {k: rate(v) for k, v in rates.items()}
    if values:
        record["values"] = {k: float(v) if isinstance(v, float) else v
                            for k, v in values.items()}
    if note:
        record["note"] = note
    if date is not False:
        record["date"] = date or datetime.date.today().isoformat()
    return record


def write_records(path, records, *, title=None, order=100, description=None,
                  machines=None, root=ROOT):
    """Validate ``records`` and write them to the results file ``path``.

    Records whose ``id`` is already in the file replace the old ones in
    place; new ones are appended; the file's other records are kept. The file
    is written to a temporary file beside it and renamed over it, so a
    crash never leaves half a file. ``title`` (required for a new file),
    ``order`` and ``description`` are the file's.
    """
    path = Path(path)
    machines = machine_ids() if machines is None else machines
    for record in records:
        validate_record(record, machines, root)
    if path.exists():
        document = json.loads(path.read_text(encoding="utf-8"))
    else:
        if title is None:
            raise RecordError(f"{path} is new: give it a title")
        document = {"title": title, "order": order,
                    "description": description or title, "results": []}
    if title is not None:
        document["title"] = title
    if description is not None:
        document["description"] = description
    new = {r["id"]: r for r in records}
    kept = [new.pop(r["id"], r) for r in document["results"]]
    document["results"] = kept + list(new.values())
    validate_document(document, machines, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return document


def add_record_options(parser, default=None, option="--record",
                       data="PBC development part"):
    """``--record PATH`` (the results file to write this run's records to),
    ``--machine ID`` and ``--record-data TEXT`` for a script that writes
    records."""
    parser.add_argument(option, dest=option.lstrip("-").replace("-", "_"), default=default,
                        help="results file (docs/results/*.json) to write this run's "
                             "provenance records to" + (f" (default: {default})"
                                                        if default else " (default: none)"))
    parser.add_argument("--machine", default=None,
                        help="this machine's id in the machines table of "
                             "docs/results.rst (default: detected)")
    parser.add_argument("--record-data", default=data,
                        help=f"the data as the records name it (default: {data!r})")
    return parser


def resolve_machine(requested):
    """``requested``, or the detected id; an error if neither is in the table."""
    machine = requested or detect_machine()
    if machine not in machine_ids():
        raise RecordError(f"machine {machine!r} is not in the machines table of "
                          f"{MACHINES_PAGE.relative_to(ROOT)}: describe it there and "
                          "pass --machine ID")
    return machine


def script_command(script, *words):
    """How a record names its command: ``benchmarks/NAME.py`` and its
    arguments, data folders and model files written as their role in
    capitals (``DATA_DIR``, ``MODEL``), as the documentation does."""
    folder = Path(script).resolve().parent.name
    return " ".join([f"{folder}/{Path(script).name}", *[str(w) for w in words if w]])


#: Options a record's command leaves out (where the output goes, how much is printed).
_UNRECORDED = ("--record", "--record-id", "--record-model", "--record-data", "--machine",
               "--provenance", "--log", "--verbose", "--save", "--report", "--out")
#: Options whose value is a path, named by its role.
_ROLES = {"--init": "MODEL", "--model": "MODEL", "--other-lab": "LAB_DIR",
          "--lab": "LAB_DIR"}


def recorded_argv(argv, positional="DATA_DIR"):
    """``argv`` as a record names it: the options of :data:`_UNRECORDED`
    left out, paths written as their role (``DATA_DIR``, ``MODEL``), so that
    the command is the same on every machine."""
    words, option = [], None
    for word in argv:
        if word.startswith("--"):
            option = word.split("=", 1)[0]
            if option not in _UNRECORDED:
                words.append(word if "=" not in word or option not in _ROLES
                             else f"{option}={_ROLES[option]}")
            continue
        if option in _UNRECORDED:
            continue
        if option in _ROLES:
            words.append(_ROLES[option])
        elif Path(word).exists() and ("/" in word or Path(word).is_dir()):
            words.append(positional)
        else:
            words.append(word)
    return words
