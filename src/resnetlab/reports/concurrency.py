"""``--parallel auto``: how many runs of a sweep fit on this GPU at once.

The GPU's free memory divided by what one training process needs, estimated before anything
trains: a CUDA process's fixed cost, the model's weights four times over (weights, gradients,
momentum, and an EMA or precision copy), and twice the activations of one batch (what the
forward keeps for the backward, plus the gradients flowing back), measured by a forward on the
meta device, which allocates nothing. Capped by the CPU cores (each run's Python loop and loader
needs one) and the runs left to train. On a machine without CUDA, ``auto`` is one run at a time.
"""

from __future__ import annotations

from typing import Any

import torch

from resnetlab.devices import resolve_device
from resnetlab.models import create_model
from resnetlab.models.registry import model_info
from resnetlab.reports.parallel import usable_cores

# CUDA context (~0.5 GiB), cuDNN/cuBLAS workspaces, the caching allocator's slack and a CIFAR-sized
# training set held on the device (150 MB as uint8).
PROCESS_OVERHEAD = int(1.5 * 2**30)
USABLE_FRACTION = 0.9  # of the free memory: other processes' growth, fragmentation


def auto_parallel(configs: list[Any], runs_to_train: int) -> tuple[int, str]:
    """(how many runs at once, the reason in words) for the runs ``configs`` describe."""
    devices = {resolve_device(c.device) for c in configs}
    device = next(iter(devices))
    if len(devices) != 1 or device.type != "cuda":
        return 1, f"1 (runs on {', '.join(sorted(str(d) for d in devices))}, not one CUDA device: one run at a time, in this process)"
    free, _ = torch.cuda.mem_get_info(device)
    per_run, largest = max(((run_memory_estimate(c), c) for c in configs), key=lambda pair: pair[0])
    fit = int(free * USABLE_FRACTION // per_run)
    cores = usable_cores()
    count = max(1, min(fit, cores, runs_to_train))
    return count, (f"{count} ({_gib(free)} free on {device}, about {_gib(per_run)} per run for {largest.model} at batch "
                   f"{largest.batch_size}: {fit} fit; {cores} CPU cores; {runs_to_train} run(s) to train)")


def run_memory_estimate(config: Any) -> int:
    """Bytes of GPU memory one training process of ``config`` needs (see the module docstring)."""
    channels, height, width = model_info(config.model).input_size
    if config.image_size:
        height = width = config.image_size
    activations = []

    def keep_size(module: torch.nn.Module, inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            activations.append(output.numel() * output.element_size())

    with torch.device("meta"):
        model = create_model(config.model, in_channels=channels, **config.model_options)
        leaves = [m for m in model.modules() if not any(True for _ in m.children())]
        hooks = [m.register_forward_hook(keep_size) for m in leaves]
        model(torch.empty(config.batch_size, channels, height, width))
    for hook in hooks:
        hook.remove()
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return PROCESS_OVERHEAD + 4 * weights + 2 * sum(activations)


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.1f} GiB"
