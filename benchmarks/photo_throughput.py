"""Training throughput on photos: the cached and the streamed photo loaders feeding a ResNet-18 step vs. the bare step.

Side by side, in one process, for each crop size (224 and 112 px by default), same model, batch
and step count, rounds interleaved so that drift in the machine's load hits every line alike:

1. bare     training steps on one ready, normalised channels_last batch (no data work at all);
2. cached   ``PhotoLoader`` over the photo folder's memory cache: RandomResizedCrop + flip per
            photo from the cached copy, normalised, channels_last;
3. cached-batched  the same crops cut in batches (``photo_views: batched``), the path a GPU
            takes, here on the CPU: what decides that the CPU keeps cutting photo by photo;
4. streamed ``StreamingLoader``: the same crops (bit for bit), each photo decoded from its file
            and resized in ``--workers`` worker processes (one line per worker count given).

Prints images/s for each and the ratios to the bare step (target for cached >= 0.9), and
cached-batched / cached; then how far the batched paths' pixels are from the per-photo ones over
one epoch (the cache cut in batches, and the folder streamed with its JPEGs decoded by
``decode_jpeg`` in the training process, the GPU's code path on the CPU); then the cutting alone,
batch by batch on the same boxes: per photo (``cut_crop``), batched matrix products
(``cut_crops``) and ``torchvision.ops.roi_align`` (adaptive sampling), the candidates for the
batched path. Run on a quiet machine:

    python benchmarks/photo_throughput.py --data-dir ~/.cache/resnetlab/flowers5_kaggle --sizes 224 112 --workers 1 2 --steps 20 --rounds 3
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torchvision.ops import roi_align

from resnetlab.data import Augmentation, create_loader, load_dataset
from resnetlab.data.batched_crops import cut_crops, pack_boxes
from resnetlab.data.photo_crops import PhotoCrop, crop_rng, cut_crop, draw_crop, stack_channels_last
from resnetlab.models import create_model


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True, help="a photo folder (train/<class>/, val/ or test/)")
    p.add_argument("--sizes", type=int, nargs="+", default=[224, 112], help="training crop sides S to measure")
    p.add_argument("--steps", type=int, default=20, help="timed training steps per pipeline and round")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians reported")
    p.add_argument("--workers", type=int, nargs="*", default=[1], help="decoding processes of the streamed lines (none: no streaming)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    return p.parse_args()


def endless(make_epoch: Callable[[int], Iterator]) -> Iterator:
    for epoch in itertools.count():
        yield from make_epoch(epoch)


def images_per_second(model: nn.Module, batches: Iterator, steps: int, warmup: int) -> float:
    """Train ``model`` for ``warmup + steps`` steps on ``batches``; time the last ``steps``."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    images_seen, start = 0, 0.0
    for step in range(warmup + steps):
        if step == warmup:
            start, images_seen = time.perf_counter(), 0
        images, labels = next(batches)
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(images), labels).backward()
        optimizer.step()
        images_seen += len(labels)
    return images_seen / (time.perf_counter() - start)


def measure(data_dir: str, size: int, args: argparse.Namespace) -> dict[str, float]:
    bundle = load_dataset("folder", data_dir, image_size=size)
    if bundle.pipeline != "photos":
        raise SystemExit(f"{data_dir} is not a photo folder ({bundle.extra.get('pipeline_reason')})")
    common = dict(mean=bundle.mean, std=bundle.std, train=True, augmentation=Augmentation(), channels_last=True)
    loader = create_loader(bundle.train, args.batch_size, photo_views="per-photo", **common)
    batched = create_loader(bundle.train, args.batch_size, photo_views="batched", **common)
    ready = next(loader.batches(0))
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=bundle.num_classes).to(memory_format=torch.channels_last).train()
    streams = {"bare": iter(lambda: ready, None), "cached": endless(loader.batches), "cached-batched": endless(batched.batches)}
    on_disk = load_dataset("folder", data_dir, image_size=size, stream=True)
    for workers in args.workers:
        streamed = create_loader(on_disk.train, args.batch_size, photo_views="per-photo", num_workers=workers, **common)
        streams[f"streamed-{workers}w"] = endless(streamed.batches)
    samples: dict[str, list[float]] = {name: [] for name in streams}
    for round_ in range(args.rounds):
        for name, batches in streams.items():
            samples[name].append(images_per_second(model, batches, args.steps, args.warmup))
        print(f"  {size} px round {round_ + 1}: " + "  ".join(f"{n} {v[-1]:.1f}" for n, v in samples.items()), flush=True)
    return {name: statistics.median(values) for name, values in samples.items()}


def pixel_difference(data_dir: str, size: int, batch_size: int) -> None:
    """Max and mean |difference| in pixel levels (0-255) of one epoch's training crops, batched vs per-photo."""
    pixels = dict(mean=(0.0, 0.0, 0.0), std=(1 / 255,) * 3, train=True, augmentation=Augmentation())
    cached = load_dataset("folder", data_dir, image_size=size).train
    streamed = load_dataset("folder", data_dir, image_size=size, stream=True).train
    reference = create_loader(cached, batch_size, photo_views="per-photo", **pixels)
    for name, split, workers in (("cached-batched", cached, None), ("streamed-batched", streamed, 1)):
        other = create_loader(split, batch_size, photo_views="batched", num_workers=workers, **pixels)
        top, total, count = 0.0, 0.0, 0
        for (x, _), (y, _) in zip(reference.batches(0), other.batches(0), strict=True):
            difference = (x - y).abs()
            top, total, count = max(top, difference.max().item()), total + difference.sum().item(), count + difference.numel()
        print(f"  {name} vs per-photo, one epoch: max |difference| {top:.0f}, mean {total / count:.4f} pixel levels")


def roi_align_crops(images: list[torch.Tensor], crops: list[PhotoCrop], crop: int) -> torch.Tensor:
    """The crops by ``roi_align`` over the packed boxes (sampling_ratio 0: ceil(box / S) samples a bin)."""
    packed = pack_boxes(images, crops, "cpu").permute(0, 3, 1, 2).float()
    boxes = torch.tensor([[k, 0, 0, v.width, v.height] for k, v in enumerate(crops)], dtype=torch.float32)
    out = roi_align(packed, boxes, crop, spatial_scale=1.0, sampling_ratio=0, aligned=True)
    out = torch.where(torch.tensor([v.flip for v in crops])[:, None, None, None], out.flip(-1), out)
    return out.round().clamp(0, 255).to(torch.uint8).contiguous(memory_format=torch.channels_last)


def resize_kernels(data_dir: str, size: int, batch_size: int, rounds: int) -> None:
    """Cutting a batch's crops three ways, interleaved on the same boxes: speed ratios and pixel differences."""
    photos = load_dataset("folder", data_dir, image_size=size).train
    ways = {"per-photo": lambda ims, vs: stack_channels_last([cut_crop(x, v, size) for x, v in zip(ims, vs)]),
            "batched": lambda ims, vs: cut_crops(ims, vs, size, "cpu"), "roi_align": lambda ims, vs: roi_align_crops(ims, vs, size)}
    seconds = {name: 0.0 for name in ways}
    top, total = dict.fromkeys(ways, 0), dict.fromkeys(ways, 0.0)
    batches = len(photos) // batch_size
    for round_, b in itertools.product(range(rounds), range(batches)):
        rows = range(b * batch_size, (b + 1) * batch_size)
        crops = [draw_crop(crop_rng(0, round_, i), *photos.shapes[i].tolist()[1:], size, "random-resized-crop", True) for i in rows]
        images = [photos.image(i) for i in rows]
        reference = None
        for name, cut in ways.items():
            start = time.perf_counter()
            pixels = cut(images, crops)
            seconds[name] += time.perf_counter() - start
            reference = pixels if reference is None else reference
            difference = (pixels.int() - reference.int()).abs()
            top[name] = max(top[name], int(difference.max()))
            total[name] += difference.float().mean().item() / (batches * rounds)
    for name in ways:
        print(f"  cutting alone, {name}: per-photo time / its time = {seconds['per-photo'] / seconds[name]:.3f}, "
              f"max |difference| {top[name]}, mean {total[name]:.4f} pixel levels")


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"ResNet-18, batch {args.batch_size}, {args.steps} timed steps x {args.rounds} rounds, "
          f"{torch.get_num_threads()} threads, photos in {args.data_dir}")
    for size in args.sizes:
        rates = measure(args.data_dir, size, args)
        print(f"{size} px: " + ", ".join(f"{name} {rate:.1f} images/s" for name, rate in rates.items()))
        for name, rate in rates.items():
            if name != "bare":
                target = "  (target >= 0.9)" if name == "cached" else ""
                print(f"  {name} / bare = {rate / rates['bare']:.3f}{target}")
        print(f"  cached-batched / cached = {rates['cached-batched'] / rates['cached']:.3f}")
        pixel_difference(args.data_dir, size, args.batch_size)
        resize_kernels(args.data_dir, size, args.batch_size, args.rounds)


if __name__ == "__main__":
    main()
