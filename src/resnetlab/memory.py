"""How much memory the machine has, so that absurd sizes are refused before they are allocated.

An ``--image-size 100000`` or a checkpoint claiming a 100000x100000 input would otherwise ask
for tens of gigabytes and be killed by the kernel (or take the machine down with it).
"""

from __future__ import annotations

import os
from pathlib import Path

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


def check_fits(nbytes: float, what: str, advice: str) -> None:
    """Refuse ``what`` when it alone needs more bytes than the machine has."""
    available = machine_memory()
    if available is not None and nbytes > available:
        raise ResnetlabError(f"{what} needs {_gib(nbytes)} of memory, more than the {_gib(available)} "
                             f"this machine has: {advice}")


def check_image_size(shape: tuple[int, int, int] | list[int], images: int, what: str, advice: str) -> None:
    """``images`` float32 tensors of ``shape`` (C, H, W) must fit in memory."""
    channels, height, width = (int(n) for n in shape)
    check_fits(float(images) * channels * height * width * FLOAT32_BYTES,
               f"{what} ({images} x {channels}x{height}x{width} float32)", advice)


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.1f} GiB"
