"""Several processes (torchrun) training one model with DistributedDataParallel.

``torchrun --nproc_per_node=N -m resnetlab train ...`` sets RANK, WORLD_SIZE and LOCAL_RANK;
without them everything here is a no-op and the run is a single process. Each rank takes rows
``rank::world_size`` of every global batch (``TensorLoader``), gradients are averaged by DDP,
metrics are summed with ``all_reduce``, and only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Distributed:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_environment() -> Distributed:
    """The torchrun environment, or a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    return Distributed(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))


def init_process_group(ctx: Distributed, device: torch.device) -> None:
    """nccl between GPUs, gloo on the CPU; rendezvous comes from torchrun's environment."""
    if ctx.enabled and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def process_device(ctx: Distributed, device: torch.device) -> torch.device:
    """One GPU per local rank; CPU and MPS stay as they are."""
    if device.type == "cuda" and ctx.enabled and device.index is None:
        return torch.device("cuda", ctx.local_rank)
    return device


def wrap_model(model: nn.Module, ctx: Distributed, device: torch.device) -> nn.Module:
    """DDP around ``model`` in a distributed run (it broadcasts rank 0's weights at start)."""
    if not ctx.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def sum_over_processes(tensor: torch.Tensor) -> torch.Tensor:
    """All-reduce (sum) a small metrics tensor; identity in a single process."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_buffers(model: nn.Module) -> None:
    """Rank 0's BatchNorm statistics everywhere, so every shard is evaluated by the saved model."""
    if dist.is_available() and dist.is_initialized():
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
