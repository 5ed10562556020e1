"""The scripts of experiments/ (not a package, not installed), loaded as modules."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


@functools.cache
def experiment(name: str) -> ModuleType:
    """``experiments/<name>.py`` loaded once as a module."""
    spec = importlib.util.spec_from_file_location(name, REPO / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
