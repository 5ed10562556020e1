"""Optimizers: which parameters train, which get weight decay, and the update rule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from resnetlab.training.config import TrainConfig


def trainable_parameters(model: nn.Module, freeze_backbone: bool) -> list[tuple[str, nn.Parameter]]:
    """All parameters, or only the classifier's (``fc``) with ``freeze_backbone``."""
    params = []
    for name, p in model.named_parameters():
        if freeze_backbone and not name.startswith("fc."):
            p.requires_grad_(False)
        if p.requires_grad:
            params.append((name, p))
    return params


def parameter_groups(model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """One group, or two when BatchNorm weights and biases (1-d tensors) skip weight decay."""
    params = trainable_parameters(model, config.freeze_backbone)
    if not config.no_weight_decay_on_bn_and_bias:
        return [{"params": [p for _, p in params], "weight_decay": config.weight_decay}]
    decay = [p for _, p in params if p.ndim > 1]
    no_decay = [p for _, p in params if p.ndim <= 1]
    return [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _sgd(groups: list[dict[str, Any]], config: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)


def _adam(groups: list[dict[str, Any]], config: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(groups, lr=config.lr, betas=(config.momentum, 0.999))


OPTIMIZERS: dict[str, Callable[[list[dict[str, Any]], TrainConfig], torch.optim.Optimizer]] = {"sgd": _sgd, "adam": _adam}


def create_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimizer over the model's trainable parameters."""
    return OPTIMIZERS[config.optimizer](parameter_groups(model, config), config)
