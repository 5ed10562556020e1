"""Data: every source (CIFAR, MNIST, image folders) reaches training through this module."""

from resnetlab.data.loader import Augmentation, TensorLoader
from resnetlab.data.types import DatasetBundle, ImageSet

__all__ = ["Augmentation", "DatasetBundle", "ImageSet", "TensorLoader"]
