"""Several processes (torchrun) training one model with DistributedDataParallel.

``torchrun --nproc_per_node=N -m resnetlab train ...`` sets RANK, WORLD_SIZE and LOCAL_RANK;
without them everything here is a no-op and the run is a single process. Each rank takes rows
``rank::world_size`` of every global batch (``TensorLoader``), gradients are averaged by DDP,
metrics are summed with ``all_reduce``, and only rank 0 writes files.

As in torchvision's references/classification: every collective takes tensors on the training
device (nccl refuses CPU tensors), each rank selects its GPU (``torch.cuda.set_device``) before
the process group opens, and ``sync_bn`` converts BatchNorm to SyncBatchNorm before DDP wraps.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from resnetlab.errors import ResnetlabError
from resnetlab.training.config import COLLECTIVE_TIMEOUT


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




def init_process_group(ctx: Distributed, device: torch.device, timeout: float = COLLECTIVE_TIMEOUT) -> None:
    """nccl between GPUs, gloo on the CPU; rendezvous comes from torchrun's environment.

    ``timeout``: seconds a collective waits for the other processes before it fails, so that one
    stalled process ends the job instead of hanging every other one forever (``peer_error``
    names it). On a GPU the rank's own device is selected first and named to the process group
    (``device_id``): otherwise every rank also opens a CUDA context on GPU 0, memory that a
    full card does not have."""
    if ctx.enabled and not dist.is_initialized():
        wait = timedelta(seconds=timeout)
        if device.type == "cuda":
            torch.cuda.set_device(device)
            dist.init_process_group(backend="nccl", device_id=device, timeout=wait)
        else:
            dist.init_process_group(backend="gloo", timeout=wait)


def process_device(ctx: Distributed, device: torch.device) -> torch.device:
    """One GPU per local rank; CPU and MPS stay as they are.

    Under torchrun a GPU index (``cuda:1``) would put every rank on that one GPU (nccl then
    fails with "Duplicate GPU"), so it is refused: the rank's LOCAL_RANK picks its GPU."""
    if device.type != "cuda" or not ctx.enabled:
        return device
    if device.index is not None:
        raise ResnetlabError(f"--device {device} names one GPU, but torchrun starts {ctx.world_size} processes that each need "
                             "their own: use --device cuda (each process takes the GPU of its LOCAL_RANK; choose the GPUs "
                             "with CUDA_VISIBLE_DEVICES)")
    if ctx.local_rank >= torch.cuda.device_count():
        raise ResnetlabError(f"LOCAL_RANK {ctx.local_rank} but only {torch.cuda.device_count()} GPU(s) are visible: "
                             "start at most one process per GPU (torchrun --nproc_per_node)")
    return torch.device("cuda", ctx.local_rank)


def sync_batchnorm(model: nn.Module, ctx: Distributed, device: torch.device) -> nn.Module:
    """BatchNorm with statistics over the whole global batch (torchvision's ``--sync-bn``).

    Converted in place (the parameters stay the same objects, the state_dict keys the same), so
    an optimizer built before and checkpoints read later are unaffected. A single process
    already sees the whole batch: nothing to do. SyncBatchNorm runs on GPUs only."""
    if not ctx.enabled:
        return model
    if device.type in ("cpu", "mps"):
        raise ResnetlabError(f"sync_bn needs GPUs (SyncBatchNorm does not run on {device.type}): "
                             "drop --sync-bn, or train on CUDA devices")
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def wrap_model(model: nn.Module, ctx: Distributed, device: torch.device) -> nn.Module:
    """DDP around ``model`` in a distributed run. DDP broadcasts rank 0's weights when it wraps,
    so anything that sets weights (init_from, sync_bn) must come before."""
    if not ctx.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def sum_over_processes(tensor: torch.Tensor) -> torch.Tensor:
    """All-reduce (sum) a small metrics tensor in place; identity in a single process. The tensor
    must be on the training device (nccl takes only CUDA tensors)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def reduce_across_processes(values: list[float], device: torch.device) -> torch.Tensor:
    """``values`` summed over all processes, as float64 on ``device`` (torchvision's helper of
    that name): built where the collective can take it."""
    return sum_over_processes(torch.tensor(values, dtype=torch.float64, device=device))


def broadcast_buffers(model: nn.Module) -> None:
    """Rank 0's BatchNorm statistics everywhere, so every shard is evaluated by the saved model."""
    if dist.is_available() and dist.is_initialized():
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


PEER_GONE = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "Socket Timeout")
# gloo: "Timed out waiting 3000ms for recv operation to complete"; nccl's watchdog: "... Timeout(ms)=600000 ..."
TIMED_OUT = re.compile(r"Timed out waiting (\d+)\s*ms|Timeout\(ms\)=(\d+)|timed out", re.IGNORECASE)


def peer_failed(exc: BaseException) -> bool:
    """Whether a collective failed because another process of the job is gone (it crashed, or
    stopped on bad input) or stopped answering (``collective_timeout``): gloo reports it as a
    RuntimeError naming the closed connection or the wait that timed out."""
    return isinstance(exc, dist.DistError) or any(words in str(exc) for words in PEER_GONE) or bool(TIMED_OUT.search(str(exc)))


def peer_error(exc: BaseException, ctx: Distributed, timeout: float | None = None) -> ResnetlabError | None:
    """The one message for a collective that failed because of another process, or None when
    ``exc`` is something else. A timeout names the process that stopped answering where that
    can be known: the other one of two (gloo's message names no rank); ``timeout`` (seconds) is
    said when the message does not carry it."""
    if not ctx.enabled or not peer_failed(exc):
        return None
    text = str(exc)
    timed_out = TIMED_OUT.search(text)
    if timed_out is None:
        return ResnetlabError(f"another process of this {ctx.world_size}-process run stopped (its own message says why), "
                              f"so rank {ctx.rank} stops too: {(text.splitlines() or [type(exc).__name__])[0][:200]}")
    milliseconds = timed_out.group(1) or timed_out.group(2)
    waited = f"{int(milliseconds) / 1000:g} s" if milliseconds else (f"{timeout:g} s" if timeout is not None else "collective_timeout")
    who = f"rank {1 - ctx.rank}" if ctx.world_size == 2 else "another process"
    return ResnetlabError(f"{who} of this {ctx.world_size}-process run stopped answering for {waited} (stalled, paused or "
                          f"stuck reading data), so rank {ctx.rank} stops: if it was only slow, raise --collective-timeout")


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
