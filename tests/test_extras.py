"""A command whose optional dependency is missing stops at once, with one line
naming the install (docs/cli.rst states which command needs which extra)."""

import importlib.util

import pytest

from leukosk.cli import _main as cli


@pytest.fixture
def no_matplotlib(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name == "matplotlib"
                        else real(name, *a, **k))


@pytest.mark.parametrize("argv", [
    ["demo", "--out", "{out}"],
    ["count", "default", "{sample}", "--out", "{out}"],
    ["train", "{sample}", "--out", "{out}"],
])
def test_missing_plot_extra_is_one_line_naming_the_install(argv, tmp_path, capsys,
                                                           no_matplotlib):
    from leukosk.datasets import sample_folder

    out = tmp_path / "out"
    argv = [a.format(out=out, sample=sample_folder()) for a in argv]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"leukosk {argv[0]}: error: needs matplotlib")
    assert 'pip install "leukosk[plot]"' in err[0]
    assert not out.exists()  # stopped before any work


def test_every_command_states_what_it_needs():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    assert set(sub.choices) == set(cli.EXTRAS)
    for name, command in sub.choices.items():
        extra = cli.EXTRAS[name][0]
        expected = f'leukosk[{extra}]' if extra else "pip install leukosk"
        assert expected in command.format_help(), name


def test_check_extras_passes_when_installed():
    pytest.importorskip("matplotlib")
    for name in cli.EXTRAS:
        cli.check_extras(name)
