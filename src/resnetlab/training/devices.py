"""Device choice and the GPU-only speed-ups (mixed precision, channels_last), kept thin.

Model code never names a device or dtype; this is the one place that decides them.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import partial

import torch

from resnetlab.errors import ResnetlabError


def resolve_device(name: str) -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; anything else must be available here."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ResnetlabError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ResnetlabError(f"device {name!r} requested but CUDA is not available: use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ResnetlabError(f"device {name!r} requested but MPS is not available: use --device cpu")
    return device


def uses_gpu_speedups(device: torch.device) -> bool:
    """AMP and channels_last pay off on CUDA; on CPU they would only change the numbers."""
    return device.type == "cuda"


def mixed_precision(device: torch.device, enabled: bool) -> tuple[Callable[[], AbstractContextManager], torch.amp.GradScaler]:
    """An autocast factory and a grad scaler: bf16 where supported, else fp16 with loss scaling."""
    if not (enabled and uses_gpu_speedups(device)):
        return nullcontext, torch.amp.GradScaler(device.type, enabled=False)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    return partial(torch.autocast, device_type=device.type, dtype=dtype), scaler
