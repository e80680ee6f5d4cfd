"""The command line parses and calls (issue 21): it imports the library's
public names only, and tells a bug in leukosk from a user's error.

Defect 8: a ``TypeError`` or ``RuntimeError`` raised inside the library is
a bug, not a usage error: it must end as "unexpected error ... please report
it", with its traceback when ``LEUKOSK_TRACEBACK=1`` is set. Defect 9:
``predict --output`` writes atomically: Ctrl-C while writing leaves the
previous file (or none), never half a CSV.
"""

import ast
import importlib
from pathlib import Path

import pytest

from leukosk import VGG19LeukocyteClassifier
from leukosk.cli import main

CLI = Path(__file__).resolve().parents[1] / "leukosk" / "cli"

#: Subpackages whose names are public only through ``leukosk`` itself.
INTERNAL = {"utils", "io", "weights", "nn", "classifier", "augmentation"}

#: Private names the command line may import, and why: writing output is the
#: command line's own job, and these are the one place its rules live
#: (terminal-safe text, CSV cells, output folders checked before any work and
#: replaced whole, files written atomically).
ALLOWED_PRIVATE = {
    "leukosk.utils._output": {"printable", "csv_cell", "encode_name", "check_output_file",
                              "check_output_folder", "replaced_folder"},
    "leukosk.utils._files": {"atomic_path"},
}


def _imports(path):
    """(module, name) of every ``from M import name`` in ``path``, relative
    imports resolved; ``import M`` as (M, None)."""
    package = "leukosk.cli"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            yield from ((module, alias.name) for alias in node.names)


def _is_public(module, name):
    parts = module.split(".")
    if parts[0] != "leukosk" or module.startswith("leukosk.cli"):
        return True  # the standard library, numpy..., or the command line itself
    if any(part.startswith("_") for part in parts) or (len(parts) > 1
                                                       and parts[1] in INTERNAL):
        return name in ALLOWED_PRIVATE.get(module, ())
    return name is None or name in importlib.import_module(module).__all__


@pytest.mark.parametrize("path", sorted(CLI.glob("*.py")), ids=lambda p: p.name)
def test_the_command_line_imports_public_names_only(path):
    private = [f"{module}.{name}" for module, name in _imports(path)
               if not _is_public(module, name)]
    assert not private, (f"{path.name} imports {private}: make what it needs a public "
                         "library function (or justify it in ALLOWED_PRIVATE)")


def test_the_import_check_sees_a_private_import(tmp_path):
    fake = tmp_path / "fake.py"
    fake.write_text("from ..classifier._pretrained import resolve_model\n"
                    "from .. import load_model\nfrom ..count import check_level\n")
    assert [_is_public(m, n) for m, n in _imports(fake)] == [False, True, False]


# -- defect 8: library bugs are not user errors ----------------------------------------------

@pytest.mark.parametrize("error", [TypeError("unsupported operand"),
                                   RuntimeError("shape mismatch")])
def test_a_library_bug_is_reported_as_a_bug(error, model_and_images, monkeypatch, capsys):
    model, cells = model_and_images

    def bug(self, X):
        raise error

    monkeypatch.setattr(VGG19LeukocyteClassifier, "predict_proba", bug)
    monkeypatch.delenv("LEUKOSK_TRACEBACK", raising=False)
    assert main(["predict", "--model", str(model), str(cells)]) == 1
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"leukosk predict: unexpected error ({type(error).__name__}): "
                           f"{error}"), last
    assert "please report it" in last and "LEUKOSK_TRACEBACK=1" in last
    assert "Traceback" not in err

    monkeypatch.setenv("LEUKOSK_TRACEBACK", "1")
    assert main(["predict", "--model", str(model), str(cells)]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "in bug" in err
    assert err.strip().splitlines()[-1] == last  # the same line, below the traceback


def test_documented_user_errors_stay_one_line(model_and_images, monkeypatch, capsys):
    from leukosk import WeightsUnavailableError

    model, cells = model_and_images

    def offline(self, X):
        raise WeightsUnavailableError("no weights offline; pass --weights none")

    monkeypatch.setattr(VGG19LeukocyteClassifier, "predict_proba", offline)
    monkeypatch.delenv("LEUKOSK_TRACEBACK", raising=False)
    assert main(["predict", "--model", str(model), str(cells)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "leukosk predict: error: no weights offline; pass --weights none"
    assert main(["predict", "--model", str(model / "missing"), str(cells)]) == 1
    assert capsys.readouterr().err.startswith("leukosk predict: error: no model.safetensors")
    monkeypatch.setenv("LEUKOSK_TRACEBACK", "1")  # a user error shows it on request too
    assert main(["predict", "--model", str(model / "missing"), str(cells)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert err.strip().splitlines()[-1].startswith("leukosk predict: error: no model")


def test_a_checkpoint_folder_in_use_and_a_missing_device_are_user_errors(
        model_and_images, tmp_path, monkeypatch, capsys):
    """leukosk's own refusals are one line (exit 1), not reported as bugs."""
    from leukosk.io._checkpoint import checkpoint_owner

    _, cells = model_and_images
    monkeypatch.delenv("LEUKOSK_TRACEBACK", raising=False)
    data = tmp_path / "data"
    images = sorted(cells.iterdir())
    for k, label in enumerate(("ig", "platelet")):
        (data / label).mkdir(parents=True)
        for path in images[2 * k:2 * k + 2]:  # distinct images in each class
            (data / label / path.name).write_bytes(path.read_bytes())
    with checkpoint_owner(tmp_path / "ckpt"):  # another fit holds the folder
        code = main(["train", str(data), "--out", str(tmp_path / "m"), "--weights",
                     "none", "--image-size", "32", "--epochs", "1", "--width", "0.25",
                     "--hidden-units", "8", "--checkpoint", str(tmp_path / "ckpt"),
                     "--quiet", "--no-cache"])
    err = capsys.readouterr().err
    assert code == 1 and "leukosk train: error: checkpoint_dir" in err, err
    assert "in use by another fit" in err and "bug" not in err
    assert main(["predict", "--model", "default", str(cells), "--device", "xpu"]) == 1
    err = capsys.readouterr().err
    assert "error: device='xpu' was requested" in err and "bug" not in err


# -- defect 9: predict --output is written atomically ------------------------------------------

def test_ctrl_c_while_predict_writes_leaves_no_half_file(model_and_images, tmp_path,
                                                         monkeypatch, capsys):
    from leukosk.cli import _commands

    model, cells = model_and_images
    out = tmp_path / "predictions.csv"
    assert main(["predict", "--model", str(model), str(cells), "--output", str(out)]) == 0
    previous = out.read_bytes()
    assert len(previous.splitlines()) == 1 + 6
    write = _commands._write_predictions

    def interrupted(stream, *args):  # Ctrl-C after the header and the first row
        write(stream, *args)
        stream.flush()
        raise KeyboardInterrupt

    monkeypatch.setattr(_commands, "_write_predictions", interrupted)
    assert main(["predict", "--model", str(model), str(cells), "--output", str(out),
                 "--format", "json"]) == 130
    assert "interrupted; nothing was written" in capsys.readouterr().err
    assert out.read_bytes() == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.csv"]
    fresh = tmp_path / "fresh.csv"
    assert main(["predict", "--model", str(model), str(cells), "--output", str(fresh)]) == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.csv"]


# -- defect 11: the help names what exists ------------------------------------------------------

def test_the_help_names_existing_protocols_and_models():
    import re

    from leukosk import LeukoskWeights
    from leukosk.cli import build_parser
    from leukosk.protocols import PROTOCOLS

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    text = parser.format_help() + "".join(p.format_help() for p in sub.choices.values())
    text += "".join((CLI / name).read_text() for name in ("_parser.py", "_commands.py",
                                                           "_main.py", "_demo.py"))
    named = set(re.findall(r"\b(?:leukosk|jarjees)\d{4}\w*|\bcpu_\w+2026\w*", text))
    assert named and named <= set(PROTOCOLS), named - set(PROTOCOLS)
    shipped = set(re.findall(r"\bPBC_VGG19\w+", text))
    assert shipped <= set(LeukoskWeights.__members__), shipped
