"""GPU failures seen on a CPU: a process group that refuses CPU tensors as nccl does, and a fake
CUDA runtime (device count, compute capability, per-device random generators).

The tests here are marked ``gpu_emulated``; they run in the normal suite.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
import torch.distributed as dist


@pytest.fixture
def cuda_gloo(tmp_path: Path) -> Iterator[None]:
    """A one-process group whose only backend is for CUDA tensors ("cuda:gloo"): a collective on a
    CPU tensor raises "No backend type associated with device type cpu", as it fails under nccl."""
    dist.init_process_group("cuda:gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


@contextmanager
def fake_cuda(count: int = 1, capability: tuple[int, int] = (8, 0), current: int = 0) -> Iterator[tuple[torch.Generator, ...]]:
    """``count`` visible GPUs of compute ``capability``; their default random generators are CPU
    generators (yielded), so saving and restoring RNG states works as on real devices. Nothing
    that would allocate on a GPU may run inside."""
    generators = tuple(torch.Generator().manual_seed(100 + i) for i in range(count))
    props = SimpleNamespace(major=capability[0], minor=capability[1], name="fake GPU", total_memory=16 << 30)

    def properties(device: object = None) -> SimpleNamespace:
        index = device.index if isinstance(device, torch.device) else device
        if isinstance(index, int) and index >= count:
            raise AssertionError(f"invalid device ordinal {index}: {count} GPU(s) visible")
        return props

    patches: list[tuple[object, str, object]] = [
        (torch.cuda, "is_available", lambda: True),
        (torch.cuda, "device_count", lambda: count),
        (torch.cuda, "is_initialized", lambda: True),
        (torch.cuda, "current_device", lambda: current),
        (torch.cuda, "get_device_properties", properties),
        (torch.cuda, "default_generators", generators),
        (torch.cuda, "_check_bf16_tensor_supported", lambda device: True),  # emulation works on every GPU
        (torch.cuda.random, "_lazy_init", lambda: None),
        (torch.cuda.random, "current_device", lambda: current),
        (torch.cuda.random, "device_count", lambda: count),
        (torch.cuda.random, "is_initialized", lambda: True),
    ]
    with ExitStack() as stack:
        for target, name, value in patches:
            stack.enter_context(mock.patch.object(target, name, value))
        yield generators


@pytest.fixture
def torchrun_env(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Set the variables torchrun gives each process."""

    def set_env(rank: int, world_size: int, local_rank: int | None = None) -> None:
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", str(world_size))
        monkeypatch.setenv("LOCAL_RANK", str(rank if local_rank is None else local_rank))

    return set_env
