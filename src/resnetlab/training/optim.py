"""Optimizers: which parameters train, which get weight decay, and the update rule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from resnetlab.models.registry import in_classifier
from resnetlab.training.config import TrainConfig


def freeze_backbone(model: nn.Module) -> None:
    """Every parameter but the classifier's (``fc``) stops training (``requires_grad`` off), before
    the optimizer is built over what still trains (``--freeze-backbone``)."""
    for name, p in model.named_parameters():
        if not in_classifier(name):
            p.requires_grad_(False)


def trainable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The parameters that train (``requires_grad``), with their names."""
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


# torchvision's norm_classes (references/classification/utils.py set_weight_decay)
NORM_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm,
               nn.LocalResponseNorm)


def parameter_groups(model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """One group per weight-decay rate, ``weight_decay``'s first, each in the model's parameter
    order: the groups an optimizer (and a checkpoint's optimizer state) match by position.

    As torchvision's ``set_weight_decay``: a bias takes ``bias_weight_decay``, any other parameter
    of a normalization layer ``norm_weight_decay``, the rest ``weight_decay`` (None: ``weight_decay``).
    """
    groups: dict[float, list[nn.Parameter]] = {config.weight_decay: []}
    norm = {id(p) for m in model.modules() if isinstance(m, NORM_LAYERS) for p in m.parameters(recurse=False)}
    for name, p in trainable_parameters(model):
        groups.setdefault(weight_decay_of(name, id(p) in norm, config), []).append(p)
    return [{"params": params, "weight_decay": rate} for rate, params in groups.items() if params]


def weight_decay_of(name: str, in_norm_layer: bool, config: TrainConfig) -> float:
    """The weight-decay rate of the parameter ``name`` (``in_norm_layer``: it belongs to a normalization layer)."""
    if name.rsplit(".", 1)[-1] == "bias" and config.bias_weight_decay is not None:
        return config.bias_weight_decay
    if in_norm_layer and config.norm_weight_decay is not None:
        return config.norm_weight_decay
    return config.weight_decay


def _sgd(groups: list[dict[str, Any]], config: TrainConfig, fused: bool) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov, fused=fused or None)


def _adam(groups: list[dict[str, Any]], config: TrainConfig, fused: bool) -> torch.optim.Optimizer:
    return torch.optim.Adam(groups, lr=config.lr, betas=(config.momentum, 0.999), fused=fused or None)


OPTIMIZERS: dict[str, Callable[[list[dict[str, Any]], TrainConfig, bool], torch.optim.Optimizer]] = {"sgd": _sgd, "adam": _adam}


def use_fused_update(optimizer: torch.optim.Optimizer, fused: bool) -> None:
    """The update rule this device uses, whatever a resumed checkpoint's groups say: a run started
    on a GPU (fused) may resume on the CPU (foreach) and the other way round; a captured CUDA graph
    needs the fused update, which reads its learning rate from the device."""
    for group in optimizer.param_groups:
        if "fused" in group:
            group["fused"] = True if fused else None
            group["foreach"] = None if fused else group.get("foreach")


def create_optimizer(model: nn.Module, config: TrainConfig, *, fused: bool = False) -> torch.optim.Optimizer:
    """The configured optimizer over the model's trainable parameters.

    ``fused`` (CUDA): one kernel for the whole update, which also takes its learning rate from a
    device tensor, as a captured CUDA graph needs. On the CPU the default (foreach) update."""
    return OPTIMIZERS[config.optimizer](parameter_groups(model, config), config, fused)
