"""Device choice and the speed-ups that depend on it (channels_last, cuDNN autotuning), kept thin.

Precision (autocast, loss scaling) is ``precision.py``'s.

Model code never names a device or dtype; this is the one place that decides them.
"""

from __future__ import annotations

import os

import torch

from resnetlab.errors import ResnetlabError, option, shown


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; anything else must be available here.

    Every command (train, eval, predict, report) resolves its ``--device`` here."""
    name = str(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ResnetlabError(f"unknown device {shown(name)}: use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ResnetlabError(f"device {name!r} requested but CUDA is not available: use {option('device', 'cpu')}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ResnetlabError(f"device {name!r} requested but MPS is not available: use {option('device', 'cpu')}")
    return device


def memory_format(device: torch.device, channels_last: bool) -> torch.memory_format:
    """The layout of models and batches: channels_last (NHWC) where its convolutions are faster,
    CUDA and the CPU's oneDNN kernels (benchmarks/throughput.py measures the gain here); MPS keeps
    the default. Training and every later evaluation of a run use the same one, so that they agree
    to the last logit."""
    return torch.channels_last if channels_last and device.type in ("cuda", "cpu") else torch.contiguous_format


def host_check_interval(device: torch.device) -> int:
    """Training steps between reads of the loss to the host (the non-finite check, progress, the
    processes' agreement to stop). Every step on the CPU, where a read costs nothing and a
    non-finite loss is caught before its step; on a GPU each read stalls the queue of kernels."""
    return 1 if device.type == "cpu" else 50


def tune_for_fixed_sizes(device: torch.device) -> None:
    """cuDNN picks the fastest convolution algorithm for each input shape once; training batches
    all have one size, so that search pays (torchvision's references do the same)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def device_name(device: torch.device) -> str:
    """The device in words for a run's log: a GPU by its model and by the physical index a job
    scheduler or a parallel sweep chose (``CUDA_VISIBLE_DEVICES``), the CPU by its threads."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        where = f", CUDA_VISIBLE_DEVICES={visible}" if visible is not None else ""
        return f"cuda:{index} ({torch.cuda.get_device_name(index)}{where})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)
