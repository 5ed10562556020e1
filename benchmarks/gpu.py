"""Training throughput on one CUDA GPU: a bare eager loop, resnetlab's own step, the bare step captured
in a CUDA graph, and the common PIL pipeline, side by side in one run against the GPU's measured bf16 rate.

Rows (images/s; "of bf16" is a training step's FLOPs per second as a fraction of the bf16 matrix
product's rate measured first, the most this GPU does; fp32 rows cannot reach it):

1. matmul         a large bf16 ``torch.matmul``, timed with CUDA events: the reference rate;
2. bare eager     ResNet-20, batch 128, channels_last, SGD (momentum 0.9, weight decay 1e-4): uint8
                  images already on the GPU, gathered, normalised, cropped and flipped there (as
                  as in a common hand-written GPU loop), fp32 and bf16 autocast;
3. resnetlab      resnetlab's own training step (``training.step.train_step``, fused SGD, on its own
                  GPU-resident loader: ``resnetlab_rate``), eager and captured as a CUDA graph
                  (``training.step.GraphedStep``, what training does on CUDA), fp32 and bf16;
4. bare graphed   the bare loop's whole step (forward, backward, SGD update with the learning rate as a
                  device tensor) captured once in a ``torch.cuda.CUDAGraph`` and replayed: what capture
                  gains without resnetlab's loader;
5. ResNet-110     bare eager, bare graphed and resnetlab graphed, bf16;
6. PIL pipeline   ImageFolder + PIL transforms + DataLoader with 8 workers over ``--data-dir``, fp32
                  (skipped without ``--data-dir``);
7. recipe         with ``--with-recipe`` and ``--data-dir``: ``resnetlab train --recipe fast`` (15 epochs)
                  and the seconds (training and test passes) until its test accuracy first reached 88%.

    python benchmarks/gpu.py --data-dir DIR --with-recipe

Synthetic uint8 images of CIFAR-10's shape without ``--data-dir``. Without a CUDA GPU it prints one
line and exits with status 2. Each row: ``--warmup`` untimed steps, then ``--steps`` timed ones between
``torch.cuda.synchronize()`` calls. Targets (docs/gpu.md): resnetlab >= 5x the bare eager loop.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from resnetlab.data import ImageSet, load_dataset
from resnetlab.data.factory import create_loader
from resnetlab.data.loader import Augmentation
from resnetlab.models import create_model
from resnetlab.precision import autocast, grad_scaler
from resnetlab.training.step import GraphedStep, StepParts, train_step

CUDA = torch.device("cuda")
LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 1e-4  # the paper's SGD
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)  # CIFAR-10's, as the PIL pipeline uses
NO_GPU = "benchmarks/gpu.py needs a CUDA GPU: torch.cuda.is_available() is False here"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None, help="CIFAR-10 JPEG folder (train/, test/): real images, the PIL pipeline's row, the recipe")
    p.add_argument("--steps", type=int, default=200, help="timed training steps per row")
    p.add_argument("--warmup", type=int, default=30, help="untimed steps first (cuDNN's algorithm search, allocator)")
    p.add_argument("--batch-size", type=int, default=128)  # the paper's mini-batch
    p.add_argument("--matmul-size", type=int, default=8192, help="side of the square bf16 matrices of the reference rate")
    p.add_argument("--with-recipe", action="store_true", help="also train the fast recipe for 15 epochs (needs --data-dir)")
    return p.parse_args()


def matmul_tflops(size: int, reps: int = 20) -> float:
    """The GPU's bf16 rate: TFLOP/s of ``size`` x ``size`` products (2 size^3 FLOPs each), timed with events."""
    a, b = (torch.randn(size, size, device=CUDA, dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        torch.matmul(a, b)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        torch.matmul(a, b)
    end.record()
    torch.cuda.synchronize()
    return 2 * size**3 * reps / (start.elapsed_time(end) / 1e3) / 1e12


def fresh_model(name: str) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, num_classes=10).to(CUDA, memory_format=torch.channels_last).train()


def step_flops(name: str, batch_size: int) -> int:
    """FLOPs of one training step (forward and backward; a multiply-add counts 2), whatever the precision."""
    model = fresh_model(name)
    images = torch.randn(batch_size, 3, 32, 32, device=CUDA).contiguous(memory_format=torch.channels_last)
    counter = FlopCounterMode(display=False)
    with counter:
        nn.functional.cross_entropy(model(images), torch.zeros(batch_size, dtype=torch.long, device=CUDA)).backward()
    return counter.get_total_flops()


class GpuBatches:
    """Batches of the bare loop: uint8 images on the GPU, random rows (with replacement: no host sync for a
    permutation), normalised, one random 4-pixel-padded crop per batch and a random flip per image."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> None:
        self.images, self.labels, self.batch_size = images.to(CUDA), labels.to(CUDA), batch_size
        self.mean = torch.tensor(MEAN, device=CUDA).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(STD, device=CUDA).view(1, 3, 1, 1) * 255

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.randint(0, len(self.images), (self.batch_size,), device=CUDA)
        x = (self.images[rows].float() - self.mean) / self.std
        dx, dy = torch.randint(0, 9, (2,)).tolist()  # drawn on the CPU: no wait for the GPU
        x = nn.functional.pad(x, (4, 4, 4, 4))[:, :, dy:dy + 32, dx:dx + 32]
        x = torch.where(torch.rand(len(x), 1, 1, 1, device=CUDA) < 0.5, x.flip(3), x)
        return x.contiguous(memory_format=torch.channels_last), self.labels[rows]


def timed(step: Callable[[], None], steps: int, warmup: int, batch_size: int) -> float:
    """Images/s of ``steps`` calls of ``step`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - start)


def autocast_for(precision: str) -> Callable[[], AbstractContextManager]:
    return partial(autocast, CUDA, precision)  # resnetlab's own autocast: bf16 needs no loss scaling


def bare_eager_rate(name: str, data: GpuBatches, precision: str, steps: int, warmup: int) -> float:
    model = fresh_model(name)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    autocast = autocast_for(precision)

    def step() -> None:
        images, labels = data.next()
        with autocast():
            loss = nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return timed(step, steps, warmup, data.batch_size)


def sgd_update(params: list[torch.Tensor], momenta: list[torch.Tensor], lr: torch.Tensor) -> None:
    """torch.optim.SGD's update (momentum, weight decay) with ``lr`` a device tensor: SGD reads a tensor
    learning rate to the host, which a graph capture cannot do."""
    with torch.no_grad():
        torch._foreach_mul_(momenta, MOMENTUM)
        torch._foreach_add_(momenta, [p.grad for p in params])
        torch._foreach_add_(momenta, params, alpha=WEIGHT_DECAY)
        torch._foreach_sub_(params, torch._foreach_mul(momenta, lr))


def graphed_rate(name: str, data: GpuBatches, precision: str, steps: int, warmup: int) -> float:
    """The bare loop's whole step (forward, backward, SGD update) captured once and replayed; batches are
    copied into the captured input tensors. The reference for what a graphed training step gains."""
    model = fresh_model(name)
    params = list(model.parameters())
    momenta = [torch.zeros_like(p) for p in params]
    lr = torch.tensor(LR, device=CUDA)
    images, labels = (t.clone() for t in data.next())  # the captured inputs
    autocast = partial(autocast_for(precision), cache_enabled=False) if precision != "fp32" else autocast_for(precision)

    def step() -> None:
        with autocast():
            loss = nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        sgd_update(params, momenta, lr)

    side = torch.cuda.Stream()  # warm-up before capture, on a side stream (torch.cuda.graphs' recipe)
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            model.zero_grad(set_to_none=True)
            step()
    torch.cuda.current_stream().wait_stream(side)
    model.zero_grad(set_to_none=True)  # the gradients are allocated inside the graph: replays overwrite them
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()

    def replay() -> None:
        new_images, new_labels = data.next()
        images.copy_(new_images)
        labels.copy_(new_labels)
        graph.replay()

    return timed(replay, steps, warmup, data.batch_size)


def resnetlab_rate(train_set: ImageSet, precision: str, steps: int, warmup: int, batch_size: int, *,
                   graphed: bool = False, model_name: str = "resnet20") -> float:
    """resnetlab's own training step on its own GPU-resident loader with the paper's augmentation, as
    ``Trainer`` runs it on CUDA: ``training.step.train_step`` with the fused SGD update, eager or
    (``graphed``) captured once and replayed by ``training.step.GraphedStep``; the totals are read
    every 50 steps, as training reads them."""
    model = fresh_model(model_name)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, fused=True)
    parts = StepParts(model, nn.CrossEntropyLoss(), optimizer, partial(autocast, CUDA, precision), grad_scaler(CUDA, precision))
    step_of = GraphedStep(parts) if graphed else partial(train_step, parts)
    loader = create_loader(train_set, batch_size, mean=MEAN, std=STD, device=CUDA, train=True,
                           augmentation=Augmentation(), channels_last=True)
    batches = (batch for epoch in range(10**6) for batch in loader.batches(epoch))
    pending: list[torch.Tensor] = []

    def step() -> None:
        pending.append(step_of(*next(batches)))
        if len(pending) == 50:
            torch.stack(pending).tolist()
            pending.clear()

    return timed(step, steps, warmup, batch_size)


def pil_pipeline_rate(data_dir: str, steps: int, warmup: int, batch_size: int, workers: int = 8) -> float:
    """The common PIL pipeline: ImageFolder, per-image PIL transforms in a DataLoader, fp32."""
    from torchvision import transforms
    from torchvision.datasets import ImageFolder

    transform = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                    transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    loader = torch.utils.data.DataLoader(ImageFolder(f"{data_dir}/train", transform), batch_size=batch_size, shuffle=True,
                                         num_workers=workers, pin_memory=True, drop_last=True, persistent_workers=True)
    model = fresh_model("resnet20")
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    batches: Iterator = (batch for _ in range(10**6) for batch in loader)

    def step() -> None:
        images, labels = (t.to(CUDA, non_blocking=True) for t in next(batches))
        loss = nn.functional.cross_entropy(model(images.contiguous(memory_format=torch.channels_last)), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return timed(step, steps, warmup, batch_size)


def recipe_seconds_to_88(data_dir: str) -> tuple[float | None, float]:
    """``resnetlab train --recipe fast`` for 15 epochs: (seconds of training and per-epoch test passes until
    the test accuracy first reached 88%, or None; the final test accuracy), from the run's metrics.csv."""
    sys.path.insert(0, str(Path(__file__).parent))
    from time_to_accuracy import first_reach, read_curve

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fast"
        subprocess.run([sys.executable, "-m", "resnetlab", "train", "--recipe", "fast", "--dataset", "folder", "--data-dir", data_dir,
                        "--epochs", "15", "--device", "cuda", "--out", str(out), "--quiet"], check=True)
        curve = read_curve(out)
    return first_reach(curve, 0.88), curve[-1][2]


def synthetic_train_set() -> ImageSet:
    gen = torch.Generator().manual_seed(0)
    return ImageSet(torch.randint(0, 256, (50_000, 3, 32, 32), dtype=torch.uint8, generator=gen),
                    torch.randint(0, 10, (50_000,), generator=gen))


def main() -> None:
    args = parse_args()
    if not torch.cuda.is_available():
        print(NO_GPU, file=sys.stderr)
        raise SystemExit(2)
    torch.backends.cudnn.benchmark = True  # as training does on CUDA (devices.tune_for_fixed_sizes)
    bs, steps, warmup = args.batch_size, args.steps, args.warmup
    train_set = load_dataset("folder", args.data_dir).train if args.data_dir else synthetic_train_set()
    data = GpuBatches(train_set.images, train_set.labels, bs)
    source = f"CIFAR-10 (JPEG copy) at {args.data_dir}" if args.data_dir else "synthetic CIFAR-10-shaped data"
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}; batch {bs}, {steps} timed steps after {warmup}; {source}")
    tflops = matmul_tflops(args.matmul_size)
    print(f"matmul bf16 {args.matmul_size}x{args.matmul_size}: {tflops:.0f} TFLOP/s (the reference rate)")
    flops = {name: step_flops(name, bs) for name in ("resnet20", "resnet110")}

    rows: dict[str, tuple[str, float]] = {}  # label -> (model, images/s)
    for precision in ("fp32", "bf16"):
        rows[f"bare eager {precision}"] = ("resnet20", bare_eager_rate("resnet20", data, precision, steps, warmup))
        rows[f"resnetlab eager {precision}"] = ("resnet20", resnetlab_rate(train_set, precision, steps, warmup, bs))
        rows[f"bare graphed {precision}"] = ("resnet20", graphed_rate("resnet20", data, precision, steps, warmup))
        rows[f"resnetlab graphed {precision}"] = ("resnet20", resnetlab_rate(train_set, precision, steps, warmup, bs, graphed=True))
    rows["110 bare eager bf16"] = ("resnet110", bare_eager_rate("resnet110", data, "bf16", steps // 2, warmup))
    rows["110 bare graphed bf16"] = ("resnet110", graphed_rate("resnet110", data, "bf16", steps // 2, warmup))
    rows["110 resnetlab graphed bf16"] = ("resnet110", resnetlab_rate(train_set, "bf16", steps // 2, warmup, bs, graphed=True,
                                                                      model_name="resnet110"))
    # After every capture: the DataLoader's pin-memory thread calls CUDA, which a capture in progress forbids.
    if args.data_dir:
        rows["PIL pipeline 8 workers fp32"] = ("resnet20", pil_pipeline_rate(args.data_dir, steps, warmup, bs))
    else:
        print("PIL pipeline: skipped (it reads JPEG files: give --data-dir)")

    print(f"  {'row':<24} {'model':<9} {'images/s':>9} {'TFLOP/s':>8} {'of bf16':>8}")
    for label, (model, rate) in rows.items():
        achieved = flops[model] * rate / bs / 1e12
        print(f"  {label:<24} {model:<9} {rate:>9.0f} {achieved:>8.1f} {achieved / tflops:>8.1%}")
    rate = {label: r for label, (_, r) in rows.items()}
    print(f"resnetlab eager / bare eager = {rate['resnetlab eager bf16'] / rate['bare eager bf16']:.2f} bf16, "
          f"{rate['resnetlab eager fp32'] / rate['bare eager fp32']:.2f} fp32  (target for resnetlab: >= 5 in bf16)")
    print(f"graphed / eager (bare) = {rate['bare graphed bf16'] / rate['bare eager bf16']:.2f} ResNet-20 bf16, "
          f"{rate['110 bare graphed bf16'] / rate['110 bare eager bf16']:.2f} ResNet-110 bf16")

    if args.with_recipe and args.data_dir:
        seconds, final = recipe_seconds_to_88(args.data_dir)
        reached = f"{seconds:.0f} s (training and test passes)" if seconds is not None else "not reached"
        print(f"fast recipe, 15 epochs: 88% after {reached}; final test accuracy {final:.2%}  (target <= 15 s)")
    elif args.with_recipe:
        print("fast recipe: skipped (it trains on CIFAR-10: give --data-dir)")


if __name__ == "__main__":
    main()
