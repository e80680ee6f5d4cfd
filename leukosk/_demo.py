"""The demo job: train a small from-scratch model on the bundled PBC sample."""

import time
from pathlib import Path

from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.model_selection import train_test_split

__all__ = ["run_demo", "format_demo_report", "run_shipped_demo", "format_shipped_report"]


def run_shipped_demo(out_dir="leukosk-demo", *, weights="DEFAULT", device="auto"):
    """Classify the bundled PBC sample with the model shipped in the package.

    The 160 sample images were kept out of that model's training, so this is
    an honest (if small) test. Takes seconds on a CPU.

    Parameters
    ----------
    out_dir : path-like, default="leukosk-demo"
        Receives ``shipped_confusion_matrix.png`` (and ``.svg``).
    weights : LeukoskWeights or str, default="DEFAULT"
    device : str, default="auto"

    Returns
    -------
    dict
        ``accuracy``, ``n``, ``confusion_matrix``, ``classes``, ``seconds``,
        ``model`` (the member's name), ``figure``.
    """
    from ._pretrained import LeukoskWeights, load_pretrained, resolve_leukosk_weights
    from .datasets import load_pbc_sample
    from .reports import plot_confusion_matrix
    from .reports._report import save_figure

    start = time.perf_counter()
    member = LeukoskWeights[resolve_leukosk_weights(weights).name]
    clf = load_pretrained(member, device=device)
    X, y = load_pbc_sample(return_paths=True, return_X_y=True)
    y_pred = clf.predict(X)
    seconds = time.perf_counter() - start
    accuracy = accuracy_score(y, y_pred)
    figure = save_figure(plot_confusion_matrix(
        y, y_pred, labels=clf.classes_,
        title=f"{member.name} on the bundled PBC sample, accuracy {accuracy:.1%}"),
        Path(out_dir) / "shipped_confusion_matrix.png")
    return {"accuracy": accuracy, "n": len(y), "classes": clf.classes_,
            "confusion_matrix": confusion_matrix(y, y_pred, labels=clf.classes_),
            "seconds": seconds, "model": member.name, "figure": figure}


def format_shipped_report(result):
    """The shipped model's demo as text: accuracy and the Fig. 5-style counts."""
    classes = [str(c) for c in result["classes"]]
    short = [c[:5] for c in classes]
    matrix = result["confusion_matrix"].T  # rows predicted, columns true (Fig. 5)
    lines = [f"Classified the {result['n']} bundled PBC images (unseen in training) with "
             f"the shipped model {result['model']} in {result['seconds']:.0f} s: accuracy "
             f"{result['accuracy']:.1%}.",
             "Confusion matrix (rows: predicted, columns: true class; as the paper's "
             "Fig. 5):",
             "              " + " ".join(f"{s:>6}" for s in short)]
    for name, row in zip(classes, matrix):
        lines.append(f"{name:>13} " + " ".join(f"{v:6d}" for v in row))
    lines.append(f"Figure: {result['figure']}")
    return "\n".join(lines)


def run_demo(out_dir="leukosk-demo", *, image_size=32, max_epochs=20,
             random_state=0, device="auto", verbose=1):
    """Train a small VGG-19-BN from scratch on the bundled sample; evaluate it.

    A stratified 75/25 split of the 160 bundled images (120 to train, 40 to
    test); random initialisation (no download); VGG-19 with batch norm and
    256-unit hidden layers without dropout (``module__hidden_units=256``: the
    4096-unit ones cost 8x the time on a CPU; ``module__dropout=0``: from
    scratch, dropout on so narrow a head slows learning), SGD at lr 1e-3.
    It shows the whole pipeline in about a minute on two CPU cores. With 15
    training images per class its accuracy is far from the paper's, which
    needs the full dataset and ImageNet weights, but well above the 12.5 % of
    chance.

    Parameters
    ----------
    out_dir : path-like, default="leukosk-demo"
        Receives ``confusion_matrix.png`` (and ``.svg``; in the style of the
        paper's Fig. 5, needs matplotlib) and ``model.safetensors``.
    image_size, max_epochs, random_state, device, verbose
        Passed to :class:`leukosk.VGG19LeukocyteClassifier`.

    Returns
    -------
    dict
        ``accuracy``, ``macro_f1``, ``n_train``, ``n_test``, ``fit_seconds``,
        ``confusion_matrix`` (array), ``figure`` and ``model`` paths.
    """
    from ._classifier import VGG19LeukocyteClassifier
    from .datasets import load_pbc_sample
    from .reports import plot_confusion_matrix
    from .reports._report import save_figure

    X, y = load_pbc_sample(image_size=image_size, return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=random_state)
    clf = VGG19LeukocyteClassifier(
        weights=None, batch_norm=True, image_size=image_size,
        max_epochs=max_epochs, batch_size=16, lr=1e-3, head_lr_multiplier=1.0,
        optimizer__weight_decay=5e-4, module__hidden_units=256,
        module__dropout=0.0,
        random_state=random_state, device=device, verbose=verbose)
    start = time.perf_counter()
    clf.fit(X_train, y_train)
    fit_seconds = time.perf_counter() - start
    y_pred = clf.predict(X_test)
    out_dir = Path(out_dir)
    accuracy = accuracy_score(y_test, y_pred)
    figure = save_figure(plot_confusion_matrix(
        y_test, y_pred, labels=clf.classes_,
        title=f"leukosk demo: bundled PBC sample, accuracy {accuracy:.1%}"),
        out_dir / "confusion_matrix.png")
    model = clf.save(out_dir / "model.safetensors")
    return {
        "accuracy": accuracy,
        "macro_f1": f1_score(y_test, y_pred, average="macro"),
        "n_train": len(y_train),
        "n_test": len(y_test),
        "fit_seconds": fit_seconds,
        "confusion_matrix": confusion_matrix(y_test, y_pred, labels=clf.classes_),
        "classes": clf.classes_,
        "figure": figure,
        "model": Path(model),
        "device": clf.module_.backbone.features[0].weight.device.type,
    }


def format_demo_report(result):
    """Human-readable summary of :func:`run_demo`'s result."""
    chance = 1.0 / len(result["classes"])
    return "\n".join([
        f"Trained a small VGG-19-BN from scratch on {result['n_train']} bundled PBC "
        f"images in {result['fit_seconds']:.0f} s ({result['device']}).",
        f"Test accuracy on {result['n_test']} held-out images: "
        f"{result['accuracy']:.1%} (macro-F1 {result['macro_f1']:.3f}; "
        f"chance {chance:.1%}).",
        "This is a smoke-size run; the paper's 98% needs the full dataset "
        "and ImageNet weights.",
        f"Confusion matrix: {result['figure']}",
        f"Model: {result['model']}",
    ])

