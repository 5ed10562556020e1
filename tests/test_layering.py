"""Imports run one way: errors, files, config_values, run_lock <- runs, models, data <- checkpoint,
devices, precision, pretrained, model_folder <- evaluation <- training <- reports, serving <- sweeps <- cli.

Every import in src/resnetlab is read from the source: at the top of a file or inside a function,
absolute, relative (``from . import x``) or of the package (``from resnetlab import training``).
A module may import only modules of its own layer or below, so that, for example, the evaluation
code can be used without the training stack.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "resnetlab"
LAYERS = {  # lower imports nothing above it
    "errors": 0, "files": 0, "memory": 0, "config_values": 0, "run_lock": 0, "stop_signals": 0, "progress": 0,
    "runs": 1, "models": 1, "data": 1,
    "checkpoint": 2, "model_folder": 2, "devices": 2, "pretrained": 2, "precision": 2,
    "evaluation": 3, "training": 4, "reports": 5, "serving": 5, "sweeps": 6, "cli": 7, "__init__": 8, "__main__": 8,
}


def layer_of(module: str) -> tuple[str, int]:
    """("data", 1) for resnetlab.data.folder, ("checkpoint", 2) for resnetlab.checkpoint."""
    part = module.split(".")[1] if "." in module else "__init__"
    if part not in LAYERS:
        raise AssertionError(f"{module}: add its layer to LAYERS")
    return part, LAYERS[part]


def module_name(path: Path) -> str:
    """resnetlab.data.folder for src/resnetlab/data/folder.py; resnetlab.data for its __init__.py."""
    parts = ("resnetlab", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, package: str | None = None) -> list[tuple[int, str]]:
    """(line, module) of every resnetlab module ``path`` imports, wherever the import statement is;
    relative imports are resolved against ``package`` (default: the one ``path`` is in)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    if package is None:
        package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from . import x, from ..data import y
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            if base == "resnetlab":  # from resnetlab import training: the names are modules
                found += [(node.lineno, f"resnetlab.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, base))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in found if name == "resnetlab" or name.startswith("resnetlab.")]


def test_the_import_reader_sees_relative_package_and_function_level_imports(tmp_path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from . import metrics\nfrom ..training import run\nfrom resnetlab import reports\n"
                      "def f():\n    import resnetlab.cli\n")
    assert imports_of(sample, package="resnetlab.evaluation") == [
        (1, "resnetlab.evaluation"), (2, "resnetlab.training"), (3, "resnetlab.reports"), (5, "resnetlab.cli")]


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(PACKAGE)) for p in MODULES])
def test_no_module_imports_a_layer_above_it(path: Path) -> None:
    module = "resnetlab." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    module = module.removesuffix(".__init__") if path.name == "__init__.py" and path.parent != PACKAGE else module
    own, level = layer_of(module) if path.parent != PACKAGE or path.stem not in ("__init__", "__main__") else (path.stem, 8)
    above = [(line, name) for line, name in imports_of(path)
             if name != "resnetlab" and layer_of(name)[1] > level and layer_of(name)[0] != own]
    assert not above, f"{path.relative_to(PACKAGE)} ({own}) imports a layer above it: {above}"


def test_same_layer_packages_stay_apart() -> None:
    """models and data know nothing of each other; checkpoint and devices neither of each other's callers."""
    for path in (PACKAGE / "models").rglob("*.py"):
        assert not [n for _, n in imports_of(path) if n.startswith("resnetlab.data")], path
    for path in (PACKAGE / "data").rglob("*.py"):
        assert not [n for _, n in imports_of(path) if n.startswith("resnetlab.models")], path


def all_imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, of any package, wherever the import statement is."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and not node.level:
            found.add(node.module or "")
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def test_reports_read_runs_and_never_start_one() -> None:
    """Starting processes, catching signals and training belong to sweeps/; reports/ only renders
    (training's config and schedule types may be read)."""
    for path in (PACKAGE / "reports").rglob("*.py"):
        imported = all_imports_of(path)
        assert not imported & {"subprocess", "signal", "ctypes", "multiprocessing"}, path
        training = {name for name in imported if name.startswith("resnetlab.training")}
        assert training <= {"resnetlab.training.config", "resnetlab.training.schedules"}, path
        assert "train(" not in path.read_text(encoding="utf-8"), path


LIBRARY = [p for p in MODULES if p.name != "__main__.py"]  # __main__ runs the command line when imported


@pytest.mark.parametrize("path", LIBRARY, ids=[str(p.relative_to(PACKAGE)) for p in LIBRARY])
def test_every_module_imports(path: Path) -> None:
    """The quick tier imports every module, whichever of them its tests reach."""
    importlib.import_module(module_name(path))


def test_training_takes_nothing_from_the_eval_commands_module() -> None:
    """Training shares evaluation's loop (logits.py), not the ``eval`` command's module (evaluate.py)."""
    for path in (PACKAGE / "training").rglob("*.py"):
        assert "resnetlab.evaluation.evaluate" not in [name for _, name in imports_of(path)], path
