"""How much memory the machine (or a GPU) has, so that absurd sizes are refused before they are allocated.

An ``--image-size 100000`` or a checkpoint claiming a 100000x100000 input would otherwise ask
for tens of gigabytes and be killed by the kernel (or take the machine down with it). What a
model's layers need for an input is estimated in ``models.complexity`` and checked here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from resnetlab.errors import ResnetlabError

FLOAT32_BYTES = 4


def machine_memory() -> int | None:
    """Bytes of RAM this process may use: physical memory, lowered by a cgroup limit (None: unknown)."""
    limits = []
    try:
        limits.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        pass
    for cgroup_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(cgroup_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) > 0:
            limits.append(int(text))
    return min(limits) if limits else None


def device_memory(device: Any = None) -> int | None:
    """Bytes ``device`` can still give tensors: a GPU's free memory (``torch.cuda.mem_get_info``),
    else the machine's RAM (the CPU; MPS shares it). None: unknown."""
    if device is not None and str(device).startswith("cuda"):
        import torch  # only here: the command line imports this module before it needs torch

        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    return machine_memory()


def check_fits(nbytes: float, what: str, advice: str, device: Any = None) -> None:
    """Refuse ``what`` when it alone needs more bytes than ``device`` (default: the machine) has."""
    available = device_memory(device)
    if available is not None and nbytes > available:
        where = f"free on {device}" if device is not None and str(device).startswith("cuda") else "this machine has"
        raise ResnetlabError(f"{what} needs {_gib(nbytes)} of memory, more than the {_gib(available)} {where}: {advice}")


def check_image_size(shape: tuple[int, int, int] | list[int], images: int, what: str, advice: str) -> None:
    """``images`` float32 tensors of ``shape`` (C, H, W) must fit in memory."""
    channels, height, width = (int(n) for n in shape)
    check_fits(float(images) * channels * height * width * FLOAT32_BYTES,
               f"{what} ({images} x {channels}x{height}x{width} float32)", advice)


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.1f} GiB"
