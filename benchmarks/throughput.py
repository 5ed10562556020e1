"""Training throughput of ResNet-20: our loader vs. a bare step vs. a per-image PIL pipeline,
in fp32 and bf16, against the machine's own limit measured in the same run.

Measurements side by side, in one process, same model, batch and step count:

1. bare        training steps on one ready, normalised channels_last batch (no data work at all);
2. loader      ``TensorLoader`` with the paper's augmentation, channels_last;
3. pil         a Dataset returning ``transforms(Image.fromarray(x))`` (RandomCrop(32, padding=4),
               RandomHorizontalFlip, ToTensor, Normalize) in a DataLoader with 2 workers;
4. bare-nchw   the bare step with model and batch in the default (N, C, H, W) layout: what
               channels_last buys, which is why training uses it on the CPU too;
5. bare-bf16,  1 and 2 under bf16 autocast (``--precision bf16``: training's own autocast);
   loader-bf16
6. matmul      a large square matrix product in fp32 and in bf16: the rate this machine's cores
               reach at their best, the limit each training step is measured against.

Prints images/s for each, the FLOPs one training step does (forward and backward, counted by
torch's FlopCounterMode) times steps per second as GFLOP/s and as a fraction of the matrix
product's rate in the same precision, and the ratios: loader/bare >= 0.97 and loader/pil >= 1.4
(the loader's targets), bare/bare-nchw, and bf16/fp32 (>= 1.4 on a CPU with native bf16).
Run on a quiet machine (docs/precision.md):

    python benchmarks/throughput.py --data-dir ../shared/data/cifar10-jpeg-unpacked --steps 60 --rounds 3

Without ``--data-dir`` it uses synthetic data of CIFAR-10's shape (50,000 x 3 x 32 x 32 uint8).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode
from torchvision import transforms

from resnetlab.data import ImageSet, TensorLoader, load_dataset
from resnetlab.models import create_model
from resnetlab.precision import autocast, cpu_has_native_bf16, resolve_precision

CPU = torch.device("cpu")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None, help="CIFAR-10 JPEG folder (train/, test/); synthetic data if omitted")
    p.add_argument("--steps", type=int, default=60, help="timed training steps per pipeline and round")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--batch-size", type=int, default=128)  # the paper's mini-batch
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (bare, loader, pil, bare, ...); medians reported")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--matmul-size", type=int, default=4096, help="side of the square matrices of the limit's product")
    p.add_argument("--matmul-reps", type=int, default=5, help="timed matrix products per precision and round")
    return p.parse_args()


def load_train_split(data_dir: str | None) -> tuple[ImageSet, tuple[float, ...], tuple[float, ...]]:
    if data_dir:
        bundle = load_dataset("folder", data_dir)
        return bundle.train, bundle.mean, bundle.std
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (50_000, 3, 32, 32), dtype=torch.uint8, generator=gen)
    return ImageSet(images, torch.randint(0, 10, (50_000,), generator=gen)), (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)


class SeedPipeline(Dataset):
    """A per-image PIL pipeline in a DataLoader over the same uint8 images (HWC for Image.fromarray)."""

    def __init__(self, data: ImageSet, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.images = data.images.permute(0, 2, 3, 1).numpy()  # (N, H, W, C)
        self.labels = data.labels.numpy()
        self.transform = transforms.Compose([
            transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
            transforms.ToTensor(), transforms.Normalize(mean, std),
        ])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(np.ascontiguousarray(self.images[i]))), int(self.labels[i])


def endless(make_epoch: Callable[[int], Iterator]) -> Iterator:
    epoch = 0
    while True:
        yield from make_epoch(epoch)
        epoch += 1


def images_per_second(batches: Iterator, steps: int, warmup: int, batch_size: int,
                      memory_format: torch.memory_format = torch.channels_last, precision: str = "fp32") -> float:
    """Train a fresh ResNet-20 for ``warmup + steps`` steps on ``batches``; time the last ``steps``."""
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10).to(memory_format=memory_format).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        images, labels = next(batches)
        images = images.contiguous(memory_format=memory_format)
        optimizer.zero_grad(set_to_none=True)
        with autocast(CPU, precision):  # what training runs the forward pass (and so the backward) in
            loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()
    return steps * batch_size / (time.perf_counter() - start)


def training_step_flops(batch: tuple[torch.Tensor, torch.Tensor]) -> int:
    """FLOPs of one ResNet-20 training step on ``batch``: forward and backward (convolutions and
    the classifier; FlopCounterMode counts a multiply-add as 2), the same in either precision."""
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10).to(memory_format=torch.channels_last).train()
    images, labels = batch
    counter = FlopCounterMode(display=False)
    with counter:
        nn.CrossEntropyLoss()(model(images), labels).backward()
    return counter.get_total_flops()


def matmul_gflops(size: int, reps: int, precision: str) -> float:
    """The machine's own limit: GFLOP/s of ``size`` x ``size`` matrix products (2 size^3 FLOPs each)."""
    gen = torch.Generator().manual_seed(0)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = (torch.randn(size, size, generator=gen).to(dtype) for _ in range(2))
    torch.mm(a, b)  # warm-up: oneDNN picks and caches its kernel
    start = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, b)
    return 2 * size**3 * reps / (time.perf_counter() - start) / 1e9


def machine_line() -> str:
    """The processor and torch build, so a figure is quoted with what produced it."""
    name = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        name = next((line.partition(":")[2].strip() for line in cpuinfo.read_text().splitlines()
                     if line.startswith("model name")), name)
    native = "native bf16" if cpu_has_native_bf16() else "no native bf16"
    return (f"{name}, torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}, {native}: "
            f"precision auto = {resolve_precision('auto', CPU)})")


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    train, mean, std = load_train_split(args.data_dir)
    bs = args.batch_size
    loader = TensorLoader(train, bs, mean=mean, std=std, train=True, seed=0, channels_last=True)
    ready = next(loader.batches(0))
    seed_loader = DataLoader(SeedPipeline(train, mean, std), batch_size=bs, shuffle=True, num_workers=2,
                             drop_last=True, persistent_workers=True)
    pipelines = {
        "bare": lambda: iter(lambda: ready, None),
        "loader": lambda: endless(loader.batches),
        "pil": lambda: endless(lambda _epoch: iter(seed_loader)),
        "bare-nchw": lambda: iter(lambda: ready, None),
        "bare-bf16": lambda: iter(lambda: ready, None),
        "loader-bf16": lambda: endless(loader.batches),
    }
    formats = {"bare-nchw": torch.contiguous_format}
    precisions = {name: "bf16" if name.endswith("-bf16") else "fp32" for name in pipelines}
    source = f"CIFAR-10 (JPEG copy) at {args.data_dir}" if args.data_dir else "synthetic CIFAR-10-shaped data"
    print(f"ResNet-20, batch {bs}, {args.steps} timed steps, {torch.get_num_threads()} threads, {source}")
    print(f"machine: {machine_line()}")
    step_flops = training_step_flops(ready)
    print(f"one training step: {step_flops / 1e9:.2f} GFLOP (forward + backward, FlopCounterMode)")
    samples: dict[str, list[float]] = {name: [] for name in [*pipelines, "matmul-fp32", "matmul-bf16"]}
    streams = {name: make() for name, make in pipelines.items()}
    for round_ in range(args.rounds):  # interleaved, so drift in machine load hits all of them alike
        for name, batches in streams.items():
            samples[name].append(images_per_second(batches, args.steps, args.warmup, bs,
                                                   formats.get(name, torch.channels_last), precisions[name]))
        for precision in ("fp32", "bf16"):
            samples[f"matmul-{precision}"].append(matmul_gflops(args.matmul_size, args.matmul_reps, precision))
        print(f"  round {round_ + 1}: " + "  ".join(f"{n} {v[-1]:.1f}" for n, v in samples.items()), flush=True)
    rates = {name: statistics.median(values) for name, values in samples.items()}
    limits = {precision: rates.pop(f"matmul-{precision}") for precision in ("fp32", "bf16")}
    print(f"  limit: {args.matmul_size}x{args.matmul_size} matrix product {limits['fp32']:.1f} GFLOP/s in fp32, "
          f"{limits['bf16']:.1f} GFLOP/s in bf16 (median of {args.rounds})")
    print(f"  {'pipeline':<11} {'precision':<9} {'images/s':>9} {'GFLOP/s':>8} {'of limit':>8}")
    for name, rate in rates.items():
        gflops = step_flops * rate / bs / 1e9
        print(f"  {name:<11} {precisions[name]:<9} {rate:>9.1f} {gflops:>8.1f} {gflops / limits[precisions[name]]:>8.1%}")
    print(f"loader / bare = {rates['loader'] / rates['bare']:.3f}  (target >= 0.97)")
    print(f"loader / pil  = {rates['loader'] / rates['pil']:.3f}  (target >= 1.4)")
    print(f"channels_last / nchw = {rates['bare'] / rates['bare-nchw']:.3f}  (the bare step in both layouts)")
    print(f"bf16 / fp32 = {rates['bare-bf16'] / rates['bare']:.3f} bare, {rates['loader-bf16'] / rates['loader']:.3f} "
          "with the loader  (target >= 1.4 on a CPU with native bf16)")


if __name__ == "__main__":
    main()
