"""Which arithmetic a run uses: fp32, or bf16/fp16 autocast, decided once and recorded.

Autocast only: weights, optimizer state, BatchNorm statistics, the loss and checkpoints stay
fp32; convolutions and the classifier run in the lower precision. ``auto`` asks the hardware:
bf16 on a CPU whose instructions multiply bf16 natively (AVX512-BF16 or AMX-BF16; without them
bf16 is emulated and slower than fp32), on a GPU bf16 where it is native, else fp16 with loss
scaling, and fp32 everywhere else. The answer depends only on the
processor, so it is the same on every run on one machine.
"""

from __future__ import annotations

import functools
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads where it is used: the command line's --help reads PRECISIONS without it
    import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
AUTOCAST = {"bf16": "bfloat16", "fp16": "float16"}  # the torch dtype each autocast precision computes in
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # /proc/cpuinfo names of bf16 dot-product units


def resolve_precision(requested: str, device: torch.device, *, cpu_bf16: bool | None = None) -> str:
    """``requested`` as a concrete precision for ``device``: ``auto`` becomes fp32, bf16 or fp16.

    ``cpu_bf16`` overrides the CPU detection; a run resumed from before this option existed passes
    False, because its ``amp: true`` meant fp32 on a CPU.
    """
    if requested != "auto":
        return requested
    if device.type == "cuda":
        return "bf16" if gpu_has_native_bf16() else "fp16"
    if device.type == "cpu" and (cpu_has_native_bf16() if cpu_bf16 is None else cpu_bf16):
        return "bf16"
    return "fp32"


def evaluation_precision(run_config: dict, requested: str | None, device: torch.device) -> str:
    """What eval, predict and report run a checkpoint in: ``requested``, else the precision the run
    recorded (so that its own accuracy figures come out again). Runs from before the option
    evaluated in fp32."""
    if requested is not None:
        return resolve_precision(requested, device)
    recorded = run_config.get("precision")
    return recorded if recorded in ("fp32", *AUTOCAST) else "fp32"


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """The context every forward pass runs in, training's and evaluation's: nothing for fp32, else
    autocast to bf16 or fp16 (``precision`` as ``resolve_precision`` decided it)."""
    if precision == "fp32":
        return nullcontext()
    if precision not in AUTOCAST:
        raise ValueError(f"precision {precision!r} is not resolved: resolve_precision decides fp32, bf16 or fp16")
    import torch

    return torch.autocast(device_type=device.type, dtype=dtype_of(precision))


def dtype_of(precision: str) -> torch.dtype:
    """The torch dtype an autocast precision ("bf16", "fp16") computes in."""
    import torch

    return getattr(torch, AUTOCAST[precision])


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """Loss scaling, which fp16 needs (its small gradients underflow) and bf16 and fp32 do not."""
    import torch

    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def native_bf16(capability: str, cpu_flags: frozenset[str] | set[str]) -> bool:
    """True when torch's kernels can use a bf16 dot-product unit: an AVX-512 build or better
    (``torch.backends.cpu.get_cpu_capability()``) on a processor listing AVX512-BF16 or AMX-BF16."""
    return capability == "AVX512" and bool(NATIVE_BF16_FLAGS & set(cpu_flags))


@functools.cache
def cpu_has_native_bf16() -> bool:
    """This machine's answer to ``native_bf16`` (read once: a capability string and cpuinfo flags)."""
    import torch

    return native_bf16(torch.backends.cpu.get_cpu_capability(), cpu_flags())


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The first processor's feature flags (Linux); empty elsewhere, where ``auto`` stays fp32."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def gpu_has_native_bf16() -> bool:
    """bf16 in hardware (Ampere and later) on the current GPU, the one this process trains on;
    emulated bf16 is slower than fp16 with loss scaling."""
    import torch

    return torch.cuda.is_bf16_supported(including_emulation=False)
