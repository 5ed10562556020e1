"""Parameters, multiply-accumulates and per-layer shapes, counted by torch's own FlopCounterMode."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from resnetlab.errors import ResnetlabError
from resnetlab.memory import check_image_size
from resnetlab.models.registry import create_model, list_models, model_info


@dataclass
class LayerRow:
    name: str
    kind: str
    output_shape: list[int]
    params: int
    macs: int


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _run_counted(model: nn.Module, input_size: tuple[int, int, int]) -> tuple[FlopCounterMode, dict[str, list[int]]]:
    """One forward pass of a single image, recording FLOPs per module and each leaf's output shape."""
    if len(input_size) != 3 or any(not isinstance(n, int) or n < 1 for n in input_size):
        raise ResnetlabError(f"input size must be three positive whole numbers C H W, got {' '.join(map(str, input_size))}")
    check_image_size(input_size, 1, "an input of this size", "pass a smaller --input-size")
    shapes: dict[str, list[int]] = {}
    hooks = []
    for name, module in model.named_modules():
        if name and not list(module.children()):
            hooks.append(module.register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, list(o.shape))))
    counter = FlopCounterMode(display=False)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), counter:
            model(torch.zeros(1, *input_size, device=_device_of(model)))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return counter, shapes


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def count_macs(model: nn.Module, input_size: tuple[int, int, int]) -> int:
    """Multiply-accumulates of one forward pass on one image (FLOPs / 2, as the paper counts)."""
    counter, _ = _run_counted(model, input_size)
    return counter.get_total_flops() // 2


def layer_summary(model: nn.Module, input_size: tuple[int, int, int]) -> list[LayerRow]:
    """One row per leaf module in forward order: output shape (batch of 1), parameters, MACs."""
    counter, shapes = _run_counted(model, input_size)
    flops = counter.get_flop_counts()
    prefix = type(model).__name__
    rows = []
    for name, shape in shapes.items():
        module = model.get_submodule(name)
        module_flops = sum(flops.get(f"{prefix}.{name}", {}).values())
        rows.append(LayerRow(name, type(module).__name__, shape, count_parameters(module), int(module_flops // 2)))
    return rows


def model_table() -> list[dict]:
    """Every registered model at its native input size: the table of ``resnetlab models``."""
    rows = []
    for name in list_models():
        info = model_info(name)
        with torch.device("meta"):  # shapes only: no memory, no arithmetic
            model = create_model(name, num_classes=10 if info.family == "cifar" else 1000)
        rows.append(
            {
                "name": name,
                "family": info.family,
                "layers": info.depth,
                "input_size": list(info.input_size),
                "num_classes": model.fc.out_features,
                "params": count_parameters(model),
                "macs": count_macs(model, info.input_size),
            }
        )
    return rows


__all__ = ["LayerRow", "asdict", "count_macs", "count_parameters", "layer_summary", "model_table"]
