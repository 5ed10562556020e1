"""Key renaming for checkpoints of the popular CIFAR reproductions.

The most used PyTorch reproduction of the paper's CIFAR nets names its classifier ``linear``
and its blocks' shortcut ``shortcut``, and saves through ``DataParallel`` (a ``module.``
prefix); its option-A shortcuts have no parameters, so everything else already matches our
(torchvision) names.
"""

from __future__ import annotations

import torch

from resnetlab.models.registry import CLASSIFIER


def from_reference_cifar(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a reference CIFAR ResNet state dict (``module.linear.weight`` ...) to ours (``fc.weight``)."""
    renamed = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        key = key.replace(".shortcut.", ".downsample.")  # a projection (option B) shortcut's conv and BatchNorm
        if key.startswith("linear."):
            key = f"{CLASSIFIER}.{key.removeprefix('linear.')}"
        renamed[key] = value
    return renamed
