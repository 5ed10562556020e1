"""Training: the paper's recipes, resumable runs, and multi-process training (see run.py).

The names load on first use: ``resnetlab.training.config`` (what ``resnetlab train --help``
reads) imports no torch.
"""

import importlib
from typing import Any

_LAZY = {
    "train": "resnetlab.training.api", "TrainConfig": "resnetlab.training.config", "list_recipes": "resnetlab.training.config",
    "resolve_config": "resnetlab.training.config", "TrainingInterrupted": "resnetlab.training.interrupt",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'resnetlab.training' has no attribute {name!r}")


__all__ = ["TrainConfig", "TrainingInterrupted", "list_recipes", "resolve_config", "train"]
