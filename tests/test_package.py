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
