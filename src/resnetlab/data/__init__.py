"""Data: every source (CIFAR, MNIST, image folders) reaches training through this module.

``load_dataset(name, data_dir, ...)`` returns a ``DatasetBundle`` of uint8 splits with mean/std
from the training split; ``create_loader(split, batch_size, ...)`` turns a split into batches.
"""

import importlib
from typing import Any

# Loaded on first use: a module of this package that needs no torch (orientation, the command
# line's choices) is imported without it.
_LAZY = {
    "read_class_indices": "resnetlab.data.class_indices",
    "create_loader": "resnetlab.data.factory", "load_dataset": "resnetlab.data.factory",
    "Augmentation": "resnetlab.data.loader", "TensorLoader": "resnetlab.data.loader",
    "list_datasets": "resnetlab.data.sources", "StreamingLoader": "resnetlab.data.streaming",
    "DatasetBundle": "resnetlab.data.types", "ImageSet": "resnetlab.data.types",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'resnetlab.data' has no attribute {name!r}")


__all__ = [
    "Augmentation", "DatasetBundle", "ImageSet", "StreamingLoader", "TensorLoader", "create_loader",
    "list_datasets", "load_dataset", "read_class_indices",
]
