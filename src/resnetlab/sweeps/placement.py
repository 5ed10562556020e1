"""Which GPU each run of a parallel sweep trains on.

On a machine with several GPUs, runs that leave their device to resnetlab (``auto`` or ``cuda``)
are spread over all of them: each child process is given one GPU as ``CUDA_VISIBLE_DEVICES`` and
trains on its ``cuda:0``, so no run's code needs to know which physical GPU it has. A run that
names one GPU (``cuda:1``) keeps it, and the sweep's runs then share that one device.

A run starts on the GPU with the most of its budget left that fits the run's estimate (with
``--parallel auto``), or on the GPU with the fewest runs (``--parallel N``, no memory check), so
runs fill the GPUs evenly. Choosing is a pure function of the running runs' estimates, tested
without a GPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"


@dataclass(frozen=True)
class Place:
    """Where a sweep's child process trains: one of several GPUs, or (``visible`` None) the device
    its config names, shared by every run."""

    name: str = ""  # cuda:N in the sweep's own numbering ("": the one shared place)
    visible: str | None = None  # the child's CUDA_VISIBLE_DEVICES: the GPU as the sweep's parent sees it
    budget: int | None = None  # bytes the running runs' estimates may add up to (--parallel auto)

    def __str__(self) -> str:
        return f"{self.name} ({CUDA_VISIBLE_DEVICES}={self.visible})" if self.visible is not None else "its device"


SHARED = Place()


def visible_gpus(configs: list[Any]) -> list[Place]:
    """The GPUs to spread ``configs`` over, one place each; empty where the sweep shares one device
    (a run names its device, runs are not on CUDA, or one GPU is all there is)."""
    if not configs or any(str(c.device) not in ("auto", "cuda") for c in configs) or not torch.cuda.is_available():
        return []
    ids = physical_ids(os.environ.get(CUDA_VISIBLE_DEVICES), torch.cuda.device_count())
    return [Place(f"cuda:{i}", gpu) for i, gpu in enumerate(ids)] if len(ids) > 1 else []


def physical_ids(inherited: str | None, count: int) -> list[str]:
    """What each of the ``count`` GPUs this process sees is called in a child's ``CUDA_VISIBLE_DEVICES``.

    An inherited list is indexed into (cuda:1 under ``3,5`` is GPU 5); CUDA ignores its entries
    from the first invalid one, which ``count`` already leaves out."""
    if inherited is None:
        return [str(i) for i in range(count)]
    return [gpu.strip() for gpu in inherited.split(",")][:count]


def environment_at(place: Place, env: dict[str, str]) -> dict[str, str]:
    """The environment of a child trained at ``place``: its one GPU, where the sweep spreads them."""
    return env if place.visible is None else {**env, CUDA_VISIBLE_DEVICES: place.visible}


def fits(estimate: int, running: list[int], budget: int | None) -> bool:
    """Whether a run needing ``estimate`` bytes fits on a GPU beside ``running`` ones."""
    return budget is None or sum(running) + estimate <= budget


def choose_place(estimate: int, loads: list[list[int]], places: list[Place], runs: int) -> int | None:
    """The place (index) a run needing ``estimate`` bytes starts on now, beside the running runs'
    estimates ``loads`` (one list per place); None while ``runs`` are running or it fits nowhere.

    Of the places it fits, the one with the most budget left, then the fewest runs, then the first.
    A run too large for every budget still starts, alone on the GPU with the largest one."""
    if sum(len(load) for load in loads) >= runs:
        return None
    fitting = [i for i, (place, load) in enumerate(zip(places, loads)) if fits(estimate, load, place.budget)]
    if fitting:
        return min(fitting, key=lambda i: (-budget_left(places[i], loads[i]), len(loads[i]), i))
    roomiest = max(range(len(places)), key=lambda i: (places[i].budget or 0, -i))
    return None if loads[roomiest] else roomiest


def budget_left(place: Place, load: list[int]) -> int:
    return 0 if place.budget is None else place.budget - sum(load)


def first_wave(estimates: list[int], runs: int, places: list[Place]) -> list[int | None]:
    """Where each run starts when the sweep begins (a place's index), None for one that waits."""
    loads: list[list[int]] = [[] for _ in places]
    wave: list[int | None] = []
    for estimate in estimates:
        chosen = choose_place(estimate, loads, places, runs)
        if chosen is not None:
            loads[chosen].append(estimate)
        wave.append(chosen)
    return wave
