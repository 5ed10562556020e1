"""Imports run one way: errors <- models, data <- checkpoint, devices, precision, pretrained <- evaluation <- training <- reports <- cli.

Every import in src/resnetlab (at the top of a file or inside a function) is read from the
source; a module may import only modules of its own layer or below, so that, for example, the
evaluation code can be used without the training stack.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "resnetlab"
LAYERS = {  # lower imports nothing above it
    "errors": 0, "files": 0, "memory": 0, "models": 1, "data": 1, "checkpoint": 2, "devices": 2, "pretrained": 2, "precision": 2,
    "evaluation": 3, "training": 4, "reports": 5, "cli": 6, "__init__": 7, "__main__": 7,
}


def layer_of(module: str) -> tuple[str, int]:
    """("data", 1) for resnetlab.data.folder, ("checkpoint", 2) for resnetlab.checkpoint."""
    part = module.split(".")[1] if "." in module else "__init__"
    if part not in LAYERS:
        raise AssertionError(f"{module}: add its layer to LAYERS")
    return part, LAYERS[part]


def imports_of(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in found if name == "resnetlab" or name.startswith("resnetlab.")]


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(PACKAGE)) for p in MODULES])
def test_no_module_imports_a_layer_above_it(path: Path) -> None:
    module = "resnetlab." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    module = module.removesuffix(".__init__") if path.name == "__init__.py" and path.parent != PACKAGE else module
    own, level = layer_of(module) if path.parent != PACKAGE or path.stem not in ("__init__", "__main__") else (path.stem, 7)
    above = [(line, name) for line, name in imports_of(path)
             if name != "resnetlab" and layer_of(name)[1] > level and layer_of(name)[0] != own]
    assert not above, f"{path.relative_to(PACKAGE)} ({own}) imports a layer above it: {above}"


def test_same_layer_packages_stay_apart() -> None:
    """models and data know nothing of each other; checkpoint and devices neither of each other's callers."""
    for path in (PACKAGE / "models").rglob("*.py"):
        assert not [n for _, n in imports_of(path) if n.startswith("resnetlab.data")], path
    for path in (PACKAGE / "data").rglob("*.py"):
        assert not [n for _, n in imports_of(path) if n.startswith("resnetlab.models")], path
