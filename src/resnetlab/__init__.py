"""resnetlab: the experiments of 'Deep Residual Learning for Image Recognition', faithful and fast.

The Python API mirrors the command line: every command is a function here.
"""

from __future__ import annotations

import importlib
from typing import Any

from resnetlab.errors import ResnetlabError

__version__ = "0.1.0"

# Everything that needs torch loads on first use, so ``import resnetlab`` (and ``resnetlab --help``)
# stays fast: torch's own import is about two seconds.
_LAZY = {
    "create_model": "resnetlab.models",
    "list_models": "resnetlab.models",
    "load_dataset": "resnetlab.data",
    "TensorLoader": "resnetlab.data",
    "TrainConfig": "resnetlab.training",
    "resolve_config": "resnetlab.training",
    "train": "resnetlab.training",
    "summary": "resnetlab.models.summary",
    "load_checkpoint": "resnetlab.checkpoint",
    "model_from_checkpoint": "resnetlab.checkpoint",
    "evaluate": "resnetlab.evaluation",
    "Predictor": "resnetlab.evaluation",
    "finetune": "resnetlab.training.finetune",
    "export": "resnetlab.evaluation",
    "responses": "resnetlab.reports.responses",
    "report": "resnetlab.reports",
    "sweep": "resnetlab.sweeps",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'resnetlab' has no attribute {name!r}")


__all__ = ["ResnetlabError", *_LAZY]
