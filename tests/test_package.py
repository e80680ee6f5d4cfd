"""The package as a dependency: cheap import, version, public names."""

import subprocess
import sys
from importlib import metadata

import leukosk


def test_import_is_cheap_and_does_no_io():
    code = ("import sys, leukosk; "
            "heavy = [m for m in ('torch', 'skorch', 'sklearn', 'torchvision') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "[]"


def test_version_matches_metadata():
    assert leukosk.__version__ == metadata.version("leukosk")


def test_public_names():
    assert set(leukosk.__all__) == {
        "VGG19LeukocyteClassifier", "LeukocyteVGG", "RandomReflectRotate", "AugmentedImages",
        "RandomScaleCrop", "RandomStainJitter", "RandomColorJitter", "RandomBlur",
        "RandomJPEG", "Augmentations",
        "LeukoskWeights", "load_pretrained", "load_model", "resolve_model",
        "WeightsUnavailableError", "NonFiniteLossError", "FitInterruptedWarning",
        "__version__"}
    for name in leukosk.__all__:
        assert getattr(leukosk, name) is not None
    assert "VGG19LeukocyteClassifier" in dir(leukosk)
    assert leukosk.datasets.load_pbc_sample.__doc__
    assert leukosk.model_selection.paper_split.__doc__


def test_docstring_references_resolve():
    """Issue 21: docstrings named ``leukosk.protocols.few_shot`` and
    ``leukosk.nn.check_network_metadata``, which do not exist. Every dotted
    ``leukosk.*`` (or ``protocols.*``) name in the package's strings must
    import or be an attribute."""
    import ast
    import importlib
    import re
    from pathlib import Path

    pattern = re.compile(r"(?<![\w/.-])(leukosk(?:\.\w+)+|protocols\.\w+)")

    def resolves(name):
        parts = ("leukosk." + name if name.startswith("protocols.") else name).split(".")
        for i in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:i]))
            except ImportError:
                continue
            try:
                for part in parts[i:]:
                    obj = getattr(obj, part)
            except AttributeError:
                return False
            return True
        return False

    root = Path(leukosk.__file__).parent
    stale = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                stale += [f"{path.relative_to(root)}:{node.lineno}: {m.group(1)}"
                          for m in pattern.finditer(node.value)
                          if not resolves(m.group(1).rstrip("."))]
    assert not stale, stale
