"""ResNet-50 training throughput on photos on one GPU: each photo pipeline against ready tensors.

Side by side, in one process, same model (ResNet-50, bf16 autocast, channels_last, SGD), batch,
crop (224) and step count, rounds interleaved so that drift hits every line alike:

1. ready              steps on one normalised batch already on the GPU (the step's own limit);
2. cached-batched     ``PhotoLoader`` over the memory cache, views cut in batches on the GPU
                      (``photo_views: batched``; the cache on the GPU where it fits);
3. streamed-batched   ``StreamingLoader``: workers read the files, the GPU decodes each batch's
                      JPEGs (nvjpeg) and cuts the views;
4. cached-per-photo,  today's CPU paths: views cut photo by photo on the CPU from the cache, and
   streamed-per-photo each photo decoded and cut in ``--workers`` worker processes.

Each on a generated ImageNet-like folder (``--photos`` JPEGs of 400-500 x 300-375 px, quality 90,
written into a temporary folder) and, with ``--flowers DIR``, on that photo folder. Prints
images/s and the ratio of each to ``ready``. Without a GPU it prints one line and exits 2
(``--device cpu`` runs it anyway, as a check of the script: its figures mean nothing).

    python benchmarks/gpu_photos.py --flowers /data/flowers5_kaggle --workers 15 --steps 30 --rounds 3
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from resnetlab.data import Augmentation, create_loader, load_dataset
from resnetlab.models import create_model


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--flowers", default=None, metavar="DIR", help="also measure this photo folder (train/<class>/...)")
    p.add_argument("--photos", type=int, default=3000, help="JPEGs in the generated ImageNet-like folder")
    p.add_argument("--classes", type=int, default=10, help="classes of the generated folder")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=30, help="timed training steps per pipeline and round")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (cudnn autotuning, workers starting)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians reported")
    p.add_argument("--workers", type=int, default=None, help="worker processes of the streamed lines (default: the cores but one)")
    p.add_argument("--device", default="cuda", help="cuda (cpu: a check of the script only)")
    return p.parse_args()


def write_imagenet_like(root: Path, photos: int, classes: int) -> Path:
    """``photos`` JPEGs of 400-500 x 300-375 px, smooth colour fields with texture (JPEG's and the
    resize's work as on photographs, unlike noise), ``classes`` folders under ``root/train``, and
    one photo per class under ``root/val`` (a photo folder needs a split to evaluate on)."""
    rng = np.random.default_rng(0)
    for k in range(photos):
        width, height = int(rng.integers(400, 501)), int(rng.integers(300, 376))
        coarse = rng.integers(0, 256, (height // 25 + 2, width // 25 + 2, 3)).astype(np.uint8)
        image = Image.fromarray(coarse).resize((width, height), Image.BICUBIC)
        texture = rng.normal(0, 10, (height, width, 3))
        pixels = np.clip(np.asarray(image, dtype=np.float64) + texture, 0, 255).astype(np.uint8)
        folder = root / ("val" if k < classes else "train") / f"class{k % classes:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / f"{k:05d}.jpg", quality=90)
    return root


def endless(make_epoch: Callable[[int], Iterator]) -> Iterator:
    for epoch in itertools.count():
        yield from make_epoch(epoch)


def images_per_second(model: nn.Module, batches: Iterator, steps: int, warmup: int, device: torch.device) -> float:
    """Train ``model`` (bf16 autocast) for ``warmup + steps`` steps on ``batches``; time the last ``steps``."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    images_seen, start = 0, 0.0
    for step in range(warmup + steps):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start, images_seen = time.perf_counter(), 0
        images, labels = next(batches)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = loss_fn(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        images_seen += len(labels)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return images_seen / (time.perf_counter() - start)


def measure(folder: str, args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    cached = load_dataset("folder", folder, image_size=224, stream=False)
    streamed = load_dataset("folder", folder, image_size=224, stream=True)
    common = dict(mean=cached.mean, std=cached.std, device=device, train=True, augmentation=Augmentation(), channels_last=True)
    loaders = {
        "cached-batched": create_loader(cached.train, args.batch_size, photo_views="batched", **common),
        "streamed-batched": create_loader(streamed.train, args.batch_size, photo_views="batched", num_workers=args.workers, **common),
        "cached-per-photo": create_loader(cached.train, args.batch_size, photo_views="per-photo", **common),
        "streamed-per-photo": create_loader(streamed.train, args.batch_size, photo_views="per-photo", num_workers=args.workers,
                                            **common),
    }
    ready = next(loaders["cached-batched"].batches(0))
    torch.manual_seed(0)
    model = create_model("resnet50", num_classes=cached.num_classes).to(device, memory_format=torch.channels_last).train()
    streams = {"ready": iter(lambda: ready, None)} | {name: endless(loader.batches) for name, loader in loaders.items()}
    samples: dict[str, list[float]] = {name: [] for name in streams}
    for round_ in range(args.rounds):
        for name, batches in streams.items():
            samples[name].append(images_per_second(model, batches, args.steps, args.warmup, device))
        print(f"  round {round_ + 1}: " + "  ".join(f"{n} {v[-1]:.1f}" for n, v in samples.items()), flush=True)
    for batches in streams.values():
        if hasattr(batches, "close"):
            batches.close()  # ends the loaders' epochs, and so their worker processes, before the folder goes
    return {name: statistics.median(values) for name, values in samples.items()}


def report(title: str, rates: dict[str, float]) -> None:
    print(f"{title}: " + ", ".join(f"{name} {rate:.1f} images/s" for name, rate in rates.items()))
    for name, rate in rates.items():
        if name != "ready":
            print(f"  {name} / ready = {rate / rates['ready']:.3f}")


def main() -> int:
    args = parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_photos.py: no CUDA GPU here; it measures GPU pipelines (--device cpu checks the script only)")
        return 2
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (a check of the script)"
    print(f"ResNet-50, 224 px, bf16, channels_last, batch {args.batch_size}, {args.steps} timed steps x {args.rounds} rounds, {name}")
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        folder = write_imagenet_like(Path(tmp) / "imagenet-like", args.photos, args.classes)
        print(f"generated {args.photos} JPEGs of 400-500 x 300-375 px in {time.perf_counter() - started:.0f} s")
        report("ImageNet-like", measure(str(folder), args, device))
    if args.flowers:
        report(f"photos in {args.flowers}", measure(args.flowers, args, device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
