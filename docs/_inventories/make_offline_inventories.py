"""Write the offline intersphinx inventories in this folder.

``conf.py`` links to Python, NumPy, scikit-learn, PyTorch, torchvision, skorch
and joblib through intersphinx, which downloads each project's
``objects.inv`` at build time. Where the build has no network (CI here), it
falls back to the small inventories this script writes, which hold only the
objects leukosk's documentation refers to, at the addresses of those
projects' documentation. Add an entry when the docs refer to a new object,
then run ``python docs/_inventories/make_offline_inventories.py``.
"""

import zlib
from pathlib import Path

#: project -> (name, version, [(object, domain:role, address relative to the docs root)])
OBJECTS = {
    "python": ("Python", "3", [
        ("ValueError", "py:exception", "library/exceptions.html#ValueError"),
        ("TypeError", "py:exception", "library/exceptions.html#TypeError"),
        ("RuntimeError", "py:exception", "library/exceptions.html#RuntimeError"),
        ("ImportError", "py:exception", "library/exceptions.html#ImportError"),
        ("os.replace", "py:function", "library/os.html#os.replace"),
    ]),
    "numpy": ("NumPy", "2", [
        ("numpy.ndarray", "py:class", "reference/generated/numpy.ndarray.html#numpy.ndarray"),
    ]),
    "sklearn": ("scikit-learn", "stable", [
        (name, role, f"modules/generated/{name}.html#{name}") for name, role in [
            ("sklearn.utils.Bunch", "py:class"),
            ("sklearn.metrics.classification_report", "py:function"),
            ("sklearn.metrics.ConfusionMatrixDisplay", "py:class"),
            ("sklearn.preprocessing.TargetEncoder", "py:class"),
            ("sklearn.model_selection.StratifiedGroupKFold", "py:class"),
            ("sklearn.model_selection.GridSearchCV", "py:class"),
            ("sklearn.exceptions.NotFittedError", "py:class"),
        ]
    ]),
    "torch": ("PyTorch", "stable", [
        ("torch.utils.data.DataLoader", "py:class", "data.html#torch.utils.data.DataLoader"),
        ("torch.utils.data.Subset", "py:class", "data.html#torch.utils.data.Subset"),
        ("torch.autocast", "py:class", "amp.html#torch.autocast"),
        ("torch.compile", "py:function", "generated/torch.compile.html#torch.compile"),
        ("torch.autograd.grad_mode.inference_mode", "py:class",
         "generated/torch.autograd.grad_mode.inference_mode.html"
         "#torch.autograd.grad_mode.inference_mode"),
    ]),
    "torchvision": ("torchvision", "stable", [
        ("torchvision.models.vgg19", "py:function",
         "models/generated/torchvision.models.vgg19.html#torchvision.models.vgg19"),
        ("torchvision.models.vgg19_bn", "py:function",
         "models/generated/torchvision.models.vgg19_bn.html#torchvision.models.vgg19_bn"),
    ]),
    "skorch": ("skorch", "stable", [
        ("skorch.classifier.NeuralNetClassifier", "py:class",
         "classifier.html#skorch.classifier.NeuralNetClassifier"),
        ("skorch.callbacks.Checkpoint", "py:class", "callbacks.html#skorch.callbacks.Checkpoint"),
        ("skorch.dataset.Dataset", "py:class", "dataset.html#skorch.dataset.Dataset"),
    ]),
    "joblib": ("joblib", "stable", [
        ("joblib.Memory", "py:class", "generated/joblib.Memory.html#joblib.Memory"),
    ]),
}


def inventory(project, version, objects):
    """Sphinx inventory version 2: a text header, then zlib-compressed lines."""
    header = (f"# Sphinx inventory version 2\n# Project: {project}\n"
              f"# Version: {version}\n"
              "# The remainder of this file is compressed using zlib.\n")
    body = "".join(f"{name} {role} 1 {uri} -\n" for name, role, uri in objects)
    return header.encode() + zlib.compress(body.encode())


def main():
    here = Path(__file__).parent
    for key, (project, version, objects) in OBJECTS.items():
        (here / f"{key}.inv").write_bytes(inventory(project, version, objects))


if __name__ == "__main__":
    main()
