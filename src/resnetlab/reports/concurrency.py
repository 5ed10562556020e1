"""``--parallel auto``: how many runs of a sweep fit on this GPU at once.

What one training process needs on the GPU is estimated before anything trains: a CUDA process's
fixed cost, the model's weights four times over (weights, gradients, momentum, and an EMA or
precision copy), and twice the activations of one batch (what the forward keeps for the backward,
plus the gradients flowing back), measured by a forward on the meta device, which allocates
nothing. A run starts when its estimate fits in the free memory beside the running runs' estimates,
so a sweep of small nets and one large one trains the small ones beside the large one instead of
as few at a time as the largest allows. At most one run per CPU core (each run's Python loop and
loader needs one). On a machine without CUDA, ``auto`` is one run at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from resnetlab.devices import resolve_device
from resnetlab.models import create_model
from resnetlab.models.registry import model_info
from resnetlab.reports.parallel import fits, usable_cores

# CUDA context (~0.5 GiB), cuDNN/cuBLAS workspaces, the caching allocator's slack and a CIFAR-sized
# training set held on the device (150 MB as uint8).
PROCESS_OVERHEAD = int(1.5 * 2**30)
USABLE_FRACTION = 0.9  # of the free memory: other processes' growth, fragmentation


@dataclass(frozen=True)
class Share:
    """``--parallel auto`` decided: at most ``runs`` at once and, on a GPU, no more at once than
    their ``estimates`` (bytes, one per run to train) fit in ``budget``."""

    runs: int
    budget: int | None
    estimates: list[int]
    reason: str


def auto_parallel(configs: list[Any]) -> Share:
    """How the runs still to train (``configs``) share this machine."""
    devices = {resolve_device(c.device) for c in configs}
    device = next(iter(devices))
    if len(devices) != 1 or device.type != "cuda":
        where = ", ".join(sorted(str(d) for d in devices))
        return Share(1, None, [], f"1 (runs on {where}, not one CUDA device: one run at a time, in this process)")
    free, _ = torch.cuda.mem_get_info(device)
    budget = int(free * USABLE_FRACTION)
    estimates = [run_memory_estimate(c) for c in configs]
    runs = max(1, min(usable_cores(), len(configs)))
    small, large = min(range(len(configs)), key=estimates.__getitem__), max(range(len(configs)), key=estimates.__getitem__)
    first = len(first_wave(estimates, runs, budget))
    return Share(runs, budget, estimates, (
        f"up to {runs} at once ({usable_cores()} CPU cores, {len(configs)} run(s) to train) while their estimates fit in "
        f"{_gib(budget)} of the {_gib(free)} free on {device} (about {_gib(estimates[small])} per run for "
        f"{configs[small].model} to {_gib(estimates[large])} for {configs[large].model}): {first} start together"))


def first_wave(estimates: list[int], runs: int, budget: int | None) -> list[int]:
    """Which runs (indices) start at once when the sweep begins: each in turn that fits beside the ones before."""
    started: list[int] = []
    for i, estimate in enumerate(estimates):
        if fits(estimate, [estimates[j] for j in started], runs, budget):
            started.append(i)
    return started


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
