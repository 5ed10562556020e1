"""Parameters, multiply-accumulates and per-layer shapes, counted by torch's own FlopCounterMode."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from resnetlab.errors import ResnetlabError, option
from resnetlab.memory import FLOAT32_BYTES, check_fits, check_image_size, device_memory
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
    check_image_size(input_size, 1, "an input of this size", f"pass a smaller {option('input_size')}")
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



# What a pass needs beyond its layers' outputs, measured with ``ru_maxrss`` on a CPU (resnet18 at 224,
# resnet50 at 224, resnet20 at 32; batches 4-256): training peaked at 1.4-1.6 times the sum of every
# layer's output plus three copies of the weights (weights, gradients, momentum); inference without
# autograd, which frees each output once the next layer has read it, at 0.3-0.5 times that sum.
TRAINING_ACTIVATIONS = 1.5  # autograd keeps each output for the backward pass, which adds their gradients as it goes
TRAINING_WEIGHT_COPIES = 3  # weights, their gradients, the optimizer's momentum (a weight average adds one more)
INFERENCE_ACTIVATIONS = 0.5


def activation_bytes(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Bytes of every distinct tensor the leaf layers output for one input of ``input_shape``
    (N, C, H, W), from a forward on the meta device: shapes only, nothing allocated. An in-place
    ReLU's output is its input and a view (Flatten) shares its input's memory: neither counts again."""
    outputs: dict[int, torch.Tensor] = {}  # held until the end, so that no id is reused

    def record(module: nn.Module, inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor) and output._base is None:
            outputs.setdefault(id(output), output)

    hooks = [m.register_forward_hook(record) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model(torch.empty(input_shape, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    return sum(t.numel() * t.element_size() for t in outputs.values())


def memory_needed(model_name: str, model_options: dict[str, Any] | None, input_shape: tuple[int, int, int], batch_size: int,
                  *, training: bool, num_classes: int = 10, averaged_weights: bool = False) -> int:
    """Estimated peak bytes of one training step (``training``) or one inference pass of
    ``batch_size`` inputs of ``input_shape`` (C, H, W) through the model, input batch included:
    THE memory model, for refusing a pass that cannot fit and for packing a sweep's runs on a GPU.
    ``averaged_weights``: training keeps a weight average (EMA) beside the weights."""
    channels, height, width = (int(n) for n in input_shape)
    with torch.device("meta"):
        model = create_model(model_name, num_classes=num_classes, in_channels=channels, **(model_options or {}))
    model.train(training)
    layers = activation_bytes(model, (batch_size, channels, height, width))
    weights = count_parameters(model) * FLOAT32_BYTES
    batch = batch_size * channels * height * width * FLOAT32_BYTES
    if training:
        return int(batch + TRAINING_ACTIVATIONS * layers + (TRAINING_WEIGHT_COPIES + averaged_weights) * weights)
    return int(batch + INFERENCE_ACTIVATIONS * layers + weights)


def check_activation_memory(model_name: str, model_options: dict[str, Any] | None, input_shape: tuple[int, int, int],
                            batch_size: int, device: torch.device | str, what: str, advice: str, *, training: bool = False,
                            num_classes: int = 10) -> None:
    """Refuse ``what`` when the model's layers (not only the input batch) would need more memory
    than ``device`` has free: a 4000-pixel input passes ``check_image_size`` and then dies in the
    first convolution. ``check_image_size`` first, so that the meta forward itself stays small."""
    check_image_size(input_shape, batch_size, what, advice)
    needed = memory_needed(model_name, model_options, input_shape, batch_size, training=training, num_classes=num_classes)
    channels, height, width = (int(n) for n in input_shape)
    step = "a training step" if training else "a forward pass"
    check_fits(needed, f"{what} ({step} of {model_name} on {batch_size} x {channels}x{height}x{width})", advice, device=device)


def largest_batch_that_fits(model_name: str, model_options: dict[str, Any] | None, input_shape: tuple[int, int, int],
                            batch_size: int, device: torch.device | str, *, training: bool = False, num_classes: int = 10) -> int:
    """``batch_size``, halved as often as its pass (``memory_needed``) would not fit in ``device``'s
    free memory; 0 when not even one input fits. The estimate grows linearly with the batch (the
    weights do not), so two estimates give every batch's."""
    available = device_memory(device)
    if available is None:
        return batch_size
    one, two = (memory_needed(model_name, model_options, input_shape, n, training=training, num_classes=num_classes)
                for n in (1, 2))
    per_input, fixed = two - one, 2 * one - two
    while batch_size >= 1 and fixed + per_input * batch_size > available:
        batch_size //= 2
    return batch_size


def min_image_size(model_name: str, model_options: dict[str, Any] | None = None) -> int:
    """The smallest image side ``model_name`` takes: how many times its layers shrink the image
    (4 for the paper's CIFAR nets, 32 for the ImageNet ones, 8 with their CIFAR stem). Below it
    the last stage's feature maps are made of padding, and training's BatchNorm divides by the
    spread of a single value (the loss becomes NaN)."""
    info = model_info(model_name)
    channels, side, _ = info.input_size
    with torch.device("meta"):
        model = create_model(model_name, num_classes=10, in_channels=channels, **(model_options or {}))
        with torch.no_grad():
            features = model.forward_features(torch.empty(1, channels, side, side))
    return side // int(features.shape[-1])


def check_min_image_size(model_name: str, size: int, what: str, model_options: dict[str, Any] | None = None) -> None:
    """Refuse an image side below ``min_image_size``, naming the minimum (``what``: "--image-size 1")."""
    smallest = min_image_size(model_name, model_options)
    if size < smallest:
        raise ResnetlabError(f"{what} is below the smallest image {model_name} takes, {smallest} pixels (its layers shrink "
                             f"the image {smallest} times): use {smallest} or more")


__all__ = ["LayerRow", "activation_bytes", "asdict", "check_activation_memory", "check_min_image_size", "count_macs",
           "count_parameters", "largest_batch_that_fits", "layer_summary", "memory_needed", "min_image_size", "model_table"]
