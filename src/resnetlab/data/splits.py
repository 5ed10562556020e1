"""Deterministic validation split and training subset, both from a generator seeded by ``seed``."""

from __future__ import annotations

import torch

from resnetlab.config_values import generator_seed
from resnetlab.data.types import ImageSet
from resnetlab.errors import ResnetlabError, option


def split_validation(train: ImageSet, val_size: int | float, seed: int) -> tuple[ImageSet, ImageSet | None]:
    """Hold out ``val_size`` training images chosen by a seeded permutation (e.g. CIFAR-10's 45k/5k);
    a ``val_size`` below 1 is a fraction of them (0.1: a tenth, rounded).

    Both parts keep the original order of the images they contain.
    """
    if val_size == 0:
        return train, None
    if 0 < val_size < 1:
        count = round(val_size * len(train))
        if not 0 < count < len(train):
            raise ResnetlabError(f"{option('val_split', val_size)} of the {len(train)} training images holds out {count}: "
                                 "give a larger fraction or a number of images")
        val_size = count
    if isinstance(val_size, float) and not val_size.is_integer():
        raise ResnetlabError(f"{option('val_split', val_size)} must be a fraction below 1 or a whole number of images")
    val_size = int(val_size)
    if not 0 < val_size < len(train):
        raise ResnetlabError(f"{option('val_split', val_size)} must be between 0 and the {len(train)} training images")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = order[:val_size].sort().values, order[val_size:].sort().values
    return train.take(train_idx), train.take(val_idx)


def take_subset(train: ImageSet, size: int | None, seed: int) -> ImageSet:
    """The first ``size`` training images after a seeded shuffle (quick experiments, tests)."""
    if size is None or size >= len(train):
        return train
    if size <= 0:
        raise ResnetlabError(f"{option('subset', size)} must be a positive number of training images")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(generator_seed(seed + 1)))
    return train.take(order[:size].sort().values)
