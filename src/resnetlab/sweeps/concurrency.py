"""``--parallel auto``: how many runs of a sweep fit on this machine's GPUs at once.

What one training process needs on the GPU is estimated before anything trains: a CUDA process's
fixed cost plus one training step of its model and batch (``models.complexity.memory_needed``, the
one memory model: weights, gradients, momentum and any weight average, and the activations the
backward keeps, measured by a forward on the meta device, which allocates nothing).
A run starts when its estimate fits in the free memory beside the running runs' estimates,
so a sweep of small nets and one large one trains the small ones beside the large one instead of
as few at a time as the largest allows. At most one run per CPU core (each run's Python loop and
loader needs one). With several GPUs each has its own budget, and a run starts on the one with the
most of it left (``placement.py``). On a machine without CUDA, ``auto`` is one run at a time.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, replace
from typing import Any

import torch

from resnetlab.devices import resolve_device
from resnetlab.models.complexity import memory_needed
from resnetlab.models.registry import model_info
from resnetlab.sweeps.parallel import usable_cores
from resnetlab.sweeps.placement import CUDA_VISIBLE_DEVICES, SHARED, Place, first_wave, visible_gpus

# CUDA context (~0.5 GiB), cuDNN/cuBLAS workspaces, the caching allocator's slack and a CIFAR-sized
# training set held on the device (150 MB as uint8).
PROCESS_OVERHEAD = int(1.5 * 2**30)
USABLE_FRACTION = 0.9  # of the free memory: other processes' growth, fragmentation


@dataclass(frozen=True)
class Share:
    """How a parallel sweep shares the machine: at most ``runs`` at once, each on one of ``places``
    (several GPUs, or the one device the runs name) and, where a place has a budget, no more there
    at once than their ``estimates`` (bytes, one per run to train) fit in. ``reason``: the decision
    in words ("": nothing worth a line)."""

    runs: int
    places: list[Place]
    estimates: list[int]
    reason: str


def auto_parallel(configs: list[Any]) -> Share:
    """``--parallel auto``: how the runs still to train (``configs``) share this machine."""
    gpus = visible_gpus(configs)
    if gpus:
        return _share_gpus(configs, gpus)
    devices = {resolve_device(c.device) for c in configs}
    device = next(iter(devices))
    if len(devices) != 1 or device.type != "cuda":
        where = ", ".join(sorted(str(d) for d in devices))
        return Share(1, [SHARED], [], f"1 (runs on {where}, not one CUDA device: one run at a time, in this process)")
    free = free_gpu_memory([device])[0]
    place = Place(budget=int(free * USABLE_FRACTION))
    runs, estimates = _runs_and_estimates(configs)
    first = sum(at is not None for at in first_wave(estimates, runs, [place]))
    return Share(runs, [place], estimates, (
        f"{_up_to(runs, configs)} while their estimates fit in {_gib(place.budget)} of the {_gib(free)} free on "
        f"{device} ({_estimated(configs, estimates)}): {first} start together"))


def _share_gpus(configs: list[Any], gpus: list[Place]) -> Share:
    """Each GPU its own budget, from its own free memory."""
    free = free_gpu_memory([torch.device("cuda", i) for i in range(len(gpus))])
    places = [replace(gpu, budget=int(f * USABLE_FRACTION)) for gpu, f in zip(gpus, free)]
    runs, estimates = _runs_and_estimates(configs)
    wave = first_wave(estimates, runs, places)
    per_gpu = ", ".join(f"{p.name} ({CUDA_VISIBLE_DEVICES}={p.visible}, {_gib(f)} free) {wave.count(i)}"
                        for i, (p, f) in enumerate(zip(places, free)))
    return Share(runs, places, estimates, (
        f"{_up_to(runs, configs)} on {len(places)} GPUs while their estimates fit in {USABLE_FRACTION:.0%} of each "
        f"one's free memory ({_estimated(configs, estimates)}): {per_gpu} start together"))


# A child process measures, so that the sweep's own process never opens a CUDA context: one costs
# about 0.5 GiB on every GPU it touches, held for the whole sweep beside the runs.
FREE_MEMORY_PROBE = "import sys, torch; print(*(torch.cuda.mem_get_info(torch.device(d))[0] for d in sys.argv[1:]))"


def free_gpu_memory(devices: list[torch.device]) -> list[int]:
    """Free bytes on each of ``devices``, asked in a short-lived child process (in this one if the
    child cannot tell)."""
    try:
        child = subprocess.run([sys.executable, "-c", FREE_MEMORY_PROBE, *map(str, devices)],
                               capture_output=True, text=True, timeout=300)
        free = [int(word) for word in child.stdout.split()] if child.returncode == 0 else []
    except (OSError, subprocess.SubprocessError, ValueError):
        free = []
    if len(free) != len(devices):
        free = [torch.cuda.mem_get_info(device)[0] for device in devices]
    return free


def fixed_parallel(configs: list[Any], runs: int) -> Share:
    """``--parallel N``: N at once on the one device the runs name, or spread over several GPUs."""
    gpus = visible_gpus(configs)
    if not gpus:
        return Share(runs, [SHARED], [], "")
    wave = first_wave([0] * len(configs), runs, gpus)
    per_gpu = ", ".join(f"{p.name} ({CUDA_VISIBLE_DEVICES}={p.visible}) {wave.count(i)}" for i, p in enumerate(gpus))
    return Share(runs, gpus, [], f"{runs} at once on {len(gpus)} GPUs, the one with fewest runs first, no memory check: "
                                 f"{per_gpu} start together")


def _runs_and_estimates(configs: list[Any]) -> tuple[int, list[int]]:
    return max(1, min(usable_cores(), len(configs))), [run_memory_estimate(c) for c in configs]


def _up_to(runs: int, configs: list[Any]) -> str:
    return f"up to {runs} at once ({usable_cores()} CPU cores, {len(configs)} run(s) to train)"


def _estimated(configs: list[Any], estimates: list[int]) -> str:
    small, large = min(range(len(configs)), key=estimates.__getitem__), max(range(len(configs)), key=estimates.__getitem__)
    return (f"about {_gib(estimates[small])} per run for {configs[small].model} to {_gib(estimates[large])} "
            f"for {configs[large].model}")


def run_memory_estimate(config: Any) -> int:
    """Bytes of GPU memory one training process of ``config`` needs (see the module docstring)."""
    channels, height, width = model_info(config.model).input_size
    if config.image_size:
        height = width = config.image_size
    return PROCESS_OVERHEAD + memory_needed(config.model, config.model_options, (channels, height, width), config.batch_size,
                                            training=True, averaged_weights=config.ema_decay > 0)


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.1f} GiB"
