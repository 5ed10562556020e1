"""What ``--compile`` (torch.compile) buys a ResNet-20 training step on the CPU, and what its
compilation costs, at each image side a progressive-resizing run trains on.

One eager model and one compiled one (``torch.compile(model)``, as training wraps it), the same
batch, precision and layout (channels_last), side by side in one process: for each side in
order, the compiled model's first steps (where it compiles, or recompiles for the new shape) are
timed on their own, then eager and compiled steps alternate for ``--rounds`` rounds. Prints
images/s of each, their ratio (median of the rounds), the compilation's seconds, and how many
training images the faster step needs to pay them back. The compiler's cache starts empty (a
temporary folder), as on a first run; ``--warm-cache`` keeps the user's cache, as on later runs.
Run on a quiet machine:

    python benchmarks/compile_cpu.py --sides 20 24 32 --steps 30 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from typing import NamedTuple


class SideResult(NamedTuple):
    side: int
    compile_seconds: float
    eager: float  # images/s
    compiled: float  # images/s

    @property
    def ratio(self) -> float:
        return self.compiled / self.eager


def images_to_break_even(compile_seconds: float, eager: float, compiled: float) -> float | None:
    """Training images after which the compiled step's saving has repaid its compilation (None: it never does)."""
    saving_per_image = 1 / eager - 1 / compiled
    return compile_seconds / saving_per_image if saving_per_image > 0 else None


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sides", type=int, nargs="+", default=[20, 24, 32], help="image sides, in the order a run trains on them")
    p.add_argument("--steps", type=int, default=30, help="timed training steps per model, side and round")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (eager, compiled, eager, ...); medians reported")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--precision", default="auto", help="auto | fp32 | bf16 (auto: bf16 on a CPU with native bf16)")
    p.add_argument("--warm-cache", action="store_true", help="keep the compiler's own cache instead of an empty one")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    if not args.warm_cache:  # before torch is imported: inductor reads it once
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="resnetlab-inductor-")
    import torch
    from torch import nn

    from resnetlab.models import create_model
    from resnetlab.precision import autocast, cpu_flags, resolve_precision

    cpu = torch.device("cpu")
    precision = resolve_precision(args.precision, cpu)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)

    def fresh() -> tuple[nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        model = create_model("resnet20", num_classes=10).to(memory_format=torch.channels_last).train()
        return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)

    def seconds(forward: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor, steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            with autocast(cpu, precision):
                loss = loss_fn(forward(images), labels)
            loss.backward()
            optimizer.step()
        return time.perf_counter() - start

    eager_model, eager_opt = fresh()
    compiled_model, compiled_opt = fresh()
    compiled = torch.compile(compiled_model)
    shown = sorted(cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "amx_bf16"})
    print(f"{platform.processor() or platform.machine()} ({' '.join(shown) or 'no avx2'}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, "
          f"{precision}, batch {args.batch_size}, {'warm' if args.warm_cache else 'empty'} compiler cache", flush=True)
    gen = torch.Generator().manual_seed(0)
    results = []
    for side in args.sides:
        images = torch.randn(args.batch_size, 3, side, side, generator=gen).contiguous(memory_format=torch.channels_last)
        labels = torch.randint(0, 10, (args.batch_size,), generator=gen)
        compile_seconds = seconds(compiled, compiled_opt, images, labels, 2)  # compiles; the second step runs the result
        seconds(eager_model, eager_opt, images, labels, 2)
        rates: dict[str, list[float]] = {"eager": [], "compiled": []}
        for _ in range(args.rounds):
            for name, forward, optimizer in (("eager", eager_model, eager_opt), ("compiled", compiled, compiled_opt)):
                rates[name].append(args.steps * args.batch_size / seconds(forward, optimizer, images, labels, args.steps))
        result = SideResult(side, compile_seconds, statistics.median(rates["eager"]), statistics.median(rates["compiled"]))
        results.append(result)
        print(f"side {side}: compile {result.compile_seconds:.1f} s, eager {result.eager:.0f} images/s, compiled "
              f"{result.compiled:.0f} images/s: {result.ratio:.2f}x (rounds: "
              + ", ".join(f"{c / e:.2f}" for e, c in zip(rates["eager"], rates["compiled"])) + ")", flush=True)
    total = sum(r.compile_seconds for r in results)
    print(f"compilation in all: {total:.1f} s")
    for r in results:
        images = images_to_break_even(total, r.eager, r.compiled)
        print(f"side {r.side}: the whole compilation repaid after "
              + (f"{images:,.0f} training images ({images / 50_000:.1f} CIFAR epochs)" if images else "never: no faster"))


if __name__ == "__main__":
    main()
