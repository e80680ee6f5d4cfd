"""The README and the quickstart run as written, offline; the reference pages
cover the public API and the command line.

Code blocks of README.md and docs/quickstart.rst are executed in order (the
Python ones in one namespace, as a reader would paste them), in a fresh
folder, with downloads switched off. A block that needs a download or a GPU
is marked just before it, ``<!-- skip-test: REASON -->`` in Markdown or
``.. skip-test: REASON`` (an rst comment) in reStructuredText, and is skipped
with that reason. The tests assert on types, shapes and ranges, never on the
exact accuracy of the shipped model, which changes with each release.
"""

import importlib
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
QUICKSTART = ROOT / "docs" / "quickstart.rst"

_MD_BLOCK = re.compile(
    r"(?:<!--\s*skip-test:\s*(?P<skip>.*?)\s*-->\s*\n)?```(?P<lang>\w+)\n(?P<code>.*?)```",
    re.S)
_RST_SKIP = re.compile(r"^\.\. skip-test:\s*(?P<skip>.+)$")
_RST_BLOCK = re.compile(r"^\.\. code-block::\s*(?P<lang>\w+)\s*$")


def code_blocks(path):
    """``(language, code, skip_reason)`` of every fenced or code-block block."""
    text = Path(path).read_text(encoding="utf-8")
    if Path(path).suffix == ".md":
        return [(m["lang"], m["code"], m["skip"]) for m in _MD_BLOCK.finditer(text)]
    blocks, skip, lines = [], None, text.splitlines()
    i = 0
    while i < len(lines):
        if match := _RST_SKIP.match(lines[i]):
            skip = match["skip"]
        elif match := _RST_BLOCK.match(lines[i]):
            i += 1
            body = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(" ")):
                body.append(lines[i])
                i += 1
            blocks.append((match["lang"], textwrap.dedent("\n".join(body)).strip() + "\n",
                           skip))
            skip = None
            continue
        elif lines[i].strip():
            skip = None  # a marker applies to the block right after it only
        i += 1
    return blocks


def _shell_env(tmp_path):
    """PATH with ``leukosk`` and ``python`` running this interpreter on this
    checkout, as they would after ``pip install -e .``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, command in (("leukosk", f'"{sys.executable}" -m leukosk'),
                          ("python", f'"{sys.executable}"')):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
        script.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               LEUKOSK_OFFLINE="1", MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    return env


def run_document(path, tmp_path, monkeypatch):
    """Run every block of ``path`` in order in ``tmp_path``; return the Python
    namespace and the list of skipped reasons."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("LEUKOSK_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace, skipped = {"__name__": "__docs__"}, []
    for language, code, skip in code_blocks(path):
        if skip:
            skipped.append(skip)
        elif language == "python":
            exec(compile(code, f"{path.name} block", "exec"), namespace)  # noqa: S102
        elif language in ("bash", "sh", "console"):
            subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=work,
                           env=_shell_env(tmp_path), check=True, timeout=600)
        else:
            pytest.fail(f"{path.name}: a {language} block the test cannot run")
    return namespace, skipped


@pytest.mark.parametrize("path", [README, QUICKSTART], ids=lambda p: p.name)
def test_blocks_are_found_and_skips_give_a_reason(path):
    blocks = code_blocks(path)
    assert blocks, f"no code blocks found in {path.name}"
    for language, code, skip in blocks:
        assert language in ("python", "bash"), language
        if language == "python":
            compile(code, path.name, "exec")
        assert skip is None or len(skip) > 10


def test_readme_keeps_the_commands_ci_runs():
    text = README.read_text(encoding="utf-8")
    assert 'pip install -e ".[plot]" && leukosk demo' in text
    assert 'pip install -e ".[test]" && python -m pytest' in text


@pytest.mark.slow
def test_readme_runs_as_written(tmp_path, monkeypatch):
    """Minutes: it trains the README's model on the bundled sample."""
    namespace, skipped = run_document(README, tmp_path, monkeypatch)
    assert len(skipped) == 2 and all("install" in reason for reason in skipped)
    clf = namespace["clf"]
    assert 0.0 <= clf.score(namespace["X_test"], namespace["y_test"]) <= 1.0
    assert len(namespace["images"]) == 160
    work = tmp_path / "work"
    assert (work / "model.safetensors").stat().st_size > 0
    rows = (work / "predictions.csv").read_text().splitlines()
    assert len(rows) == 21 and rows[0].startswith("path,class,")
    assert (work / "count" / "count.csv").is_file()
    assert len(list((work / "gradcam").glob("*.png"))) == 20


@pytest.mark.slow
def test_quickstart_runs_as_written(tmp_path, monkeypatch):
    """Minutes: it trains the quickstart's model on the bundled sample."""
    namespace, skipped = run_document(QUICKSTART, tmp_path, monkeypatch)
    assert skipped and all("GPU" in reason for reason in skipped)
    assert namespace["shipped"].predict_proba(namespace["paths"][:4]).shape == (4, 8)
    assert 0.0 <= namespace["clf"].score(namespace["X_test"], namespace["y_test"]) <= 1.0


PUBLIC_MODULES = ("leukosk", "leukosk.adapt", "leukosk.callbacks", "leukosk.count",
                  "leukosk.datasets", "leukosk.explain", "leukosk.model_selection",
                  "leukosk.protocols", "leukosk.reports", "leukosk.uncertainty")


def documented_names(api_rst=ROOT / "docs" / "api.rst"):
    """Fully qualified names the API reference lists (autosummary entries and
    ``data``/``auto*`` directives, under the current ``currentmodule``)."""
    names, module, in_summary = set(), None, False
    for line in api_rst.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if match := re.match(r"\.\. currentmodule::\s*(\S+)", stripped):
            module, in_summary = match[1], False
        elif stripped.startswith(".. autosummary::"):
            in_summary = True
        elif match := re.match(r"\.\. (?:py:)?(?:data|auto\w+|function|class)::\s*(\S+)",
                               stripped):
            names.add(f"{module}.{match[1]}")
            in_summary = False
        elif in_summary and line.startswith("   ") and stripped and not stripped.startswith(":"):
            names.add(f"{module}.{stripped}")
        elif stripped and not line.startswith(" "):
            in_summary = False
    return names


def test_api_reference_lists_every_public_name():
    documented = documented_names()
    missing = [f"{module}.{name}" for module in PUBLIC_MODULES
               for name in importlib.import_module(module).__all__
               if name != "__version__" and f"{module}.{name}" not in documented]
    assert not missing, f"public but not in docs/api.rst: {missing}"


def test_cli_reference_covers_every_command_and_option():
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import _generate
    finally:
        sys.path.remove(str(ROOT / "docs"))
    from leukosk.cli._main import EXTRAS, build_parser

    text = _generate.cli_reference()
    commands = _generate._subcommands(build_parser())
    assert {name for name, _, _ in commands} == set(EXTRAS)
    for name, _, parser in commands:
        assert f"``leukosk {name}``" in text
        for action in parser._actions:
            for option in action.option_strings:
                assert re.search(rf"{re.escape(option)}\b", text), (name, option)
    cli_page = (ROOT / "docs" / "cli.rst").read_text(encoding="utf-8")
    assert ".. include:: _generated/cli_reference.inc" in cli_page


def test_provenance_records_are_complete():
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import _generate
    finally:
        sys.path.remove(str(ROOT / "docs"))
    tables = _generate.load_results()
    assert tables
    machines = (ROOT / "docs" / "results.rst").read_text(encoding="utf-8")
    for _, records in tables:
        for record in records:
            assert f".. _machine-{record['machine']}:" in machines, record
            assert isinstance(record["tta"], bool) and record["n"] > 0
            for key in ("accuracy", "macro_f1", "balanced_accuracy"):
                assert record.get(key) is None or 0 <= record[key] <= 1
