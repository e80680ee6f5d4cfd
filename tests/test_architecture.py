"""The package's shape: imports point down the layers, and never in a circle.

Every ``import`` in ``leukosk/`` is read from the source (deferred imports
inside functions included: they hide a dependency from Python, not from a
reader). Each module belongs to the group named by its first component under
``leukosk`` (``leukosk.nn._vgg`` to ``nn``); a module may import its own group
and the groups of lower layers, never a higher one, and no chain of imports
leads back to where it started. docs/architecture.rst draws the same picture.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "leukosk"

#: Lowest layer first; groups in the same layer must not import each other.
LAYERS = [
    ["_version"],
    ["utils"],
    ["augmentation", "datasets"],
    ["io"],
    ["weights"],
    ["nn"],
    ["callbacks"],
    ["classifier"],
    ["uncertainty", "explain", "domain", "adapt", "model_selection", "fields"],
    ["count", "reports"],
    ["review"],
    ["protocols"],
    ["corrections"],
    ["labs"],
    ["cli"],
    ["__main__"],
]
#: Groups above the library that use it as a user does, through ``leukosk``'s
#: public names (which import nothing of theirs, so no cycle can form).
USERS_OF_THE_PUBLIC_FACE = {"cli", "__main__"}
RANK = {group: rank for rank, groups in enumerate(LAYERS) for group in groups}


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path):
    """The leukosk modules ``path`` imports (names that are modules count as such)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "leukosk")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "leukosk":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
    found.discard(name)
    return found


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: imports(path) for name, path in MODULES.items()}


def group(name):
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "leukosk"


def test_every_module_has_a_layer():
    unplaced = sorted({group(m) for m in MODULES} - set(RANK) - {"leukosk"})
    assert not unplaced, f"place these in LAYERS (and docs/architecture.rst): {unplaced}"


def test_no_private_module_flat_at_the_top():
    flat = sorted(p.name for p in PACKAGE.glob("_*.py") if p.name not in (
        "__init__.py", "__main__.py", "_version.py"))
    assert not flat, f"private modules belong in the subpackage of their stage: {flat}"


@pytest.mark.parametrize("name", sorted(n for n in GRAPH if n != "leukosk"))
def test_imports_point_down(name):
    upward = []
    for target in sorted(GRAPH[name]):
        if target == "leukosk" or group(target) == "leukosk":
            if group(name) in USERS_OF_THE_PUBLIC_FACE:
                continue
            upward.append(f"{target} (the package's public face is the top layer)")
        elif group(target) != group(name) and RANK[group(target)] >= RANK[group(name)]:
            upward.append(f"{target} (layer {RANK[group(target)]} >= {RANK[group(name)]})")
    assert not upward, f"{name} imports upward or sideways: {upward}"


def test_no_import_cycle():
    """Tarjan-free: repeatedly peel modules that import nothing left."""
    remaining = {name: set(deps) & set(GRAPH) for name, deps in GRAPH.items()}
    while True:
        leaves = [name for name, deps in remaining.items() if not deps]
        if not leaves:
            break
        for leaf in leaves:
            del remaining[leaf]
        for deps in remaining.values():
            deps.difference_update(leaves)
    # what is left lies on a cycle or depends on one: show a cycle
    assert not remaining, f"import cycle among: {sorted(remaining)}"


def test_the_check_sees_an_upward_import(tmp_path):
    """The reader of imports resolves relative imports (so the test can fail)."""
    fake = PACKAGE / "utils" / "_images.py"
    source = "from ...leukosk.classifier import _classifier\nfrom ..nn._vgg import LeukocyteVGG\n"
    tree = ast.parse(source)
    node = tree.body[1]
    assert node.level == 2 and node.module == "nn._vgg"
    assert "leukosk.nn._vgg" in MODULES
    # the real file, read as it is, imports nothing above utils
    assert all(group(t) == "utils" for t in imports(fake))
