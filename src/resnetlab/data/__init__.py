"""Data: every source (CIFAR, MNIST, image folders) reaches training through this module.

``load_dataset(name, data_dir, ...)`` returns a ``DatasetBundle`` of uint8 splits with mean/std
from the training split; ``create_loader(split, batch_size, ...)`` turns a split into batches.
"""

from resnetlab.data.class_indices import read_class_indices
from resnetlab.data.factory import create_loader, load_dataset
from resnetlab.data.loader import Augmentation, TensorLoader
from resnetlab.data.sources import list_datasets
from resnetlab.data.streaming import StreamingLoader
from resnetlab.data.types import DatasetBundle, ImageSet

__all__ = [
    "Augmentation", "DatasetBundle", "ImageSet", "StreamingLoader", "TensorLoader", "create_loader",
    "list_datasets", "load_dataset", "read_class_indices",
]
