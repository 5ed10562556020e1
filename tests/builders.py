"""What tests build: tiny datasets, image and photo folders, configs and trainers, a fake CUDA.

Plain functions, imported by the tests that need them; the fixtures that wrap them are in
``tests/conftest.py`` and each folder's ``conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import numpy as np
import pytest
import torch
from PIL import Image

from resnetlab.data import DatasetBundle
from resnetlab.data.types import ImageSet
from resnetlab.precision import resolve_precision
from resnetlab.runs import RunFolder
from resnetlab.training import TrainConfig, resolve_config
from resnetlab.training.distributed import Distributed
from resnetlab.training.run import build_model
from resnetlab.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
CIFAR10_JPEG_TARBALL = SHARED_DATA / "cifar10-jpeg.tar.gz"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


def make_tiny_bundle(num_classes: int = 3, per_class: int = 16, size: int = 8, channels: int = 3, seed: int = 0) -> DatasetBundle:
    """A learnable synthetic dataset: each class is a different mean brightness per channel."""
    gen = torch.Generator().manual_seed(seed)

    def split(n_per_class: int) -> ImageSet:
        labels = torch.arange(num_classes).repeat_interleave(n_per_class)
        base = (labels.float() + 0.5) / num_classes * 200
        noise = torch.randn(len(labels), channels, size, size, generator=gen) * 20
        images = (base[:, None, None, None] + noise).clamp(0, 255).to(torch.uint8)
        return ImageSet(images, labels)

    return DatasetBundle(
        name="tiny", classes=[f"class{i}" for i in range(num_classes)], train=split(per_class),
        test=split(per_class // 2), mean=(0.4,) * channels, std=(0.25,) * channels, location="memory",
    )


def make_image_folder(root: Path, classes=("cat", "dog", "fox"), per_class: int | dict[str, int] = 4, size: int = 8,
                      mode: str = "RGB", splits=("train", "test"), ext: str = "png") -> Path:
    """An ImageFolder layout of tiny lossless images whose pixels encode (class, index);
    ``per_class`` may give each split its own count ({"train": 8, "test": 4})."""
    for split in splits:
        count = per_class[split] if isinstance(per_class, dict) else per_class
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(count):
                value = 20 * c + k
                Image.new(mode, (size, size), _fill(mode, value)).save(folder / f"{k:03d}.{ext}")
    return root


def _fill(mode: str, value: int) -> int | tuple[int, ...]:
    return {"L": value, "RGB": (value, value + 1, value + 2), "RGBA": (value, value + 1, value + 2, 128)}[mode]


def poison_loss(monkeypatch: pytest.MonkeyPatch, at_call: int) -> dict[str, int]:
    """Training's loss becomes inf at its ``at_call``-th computation: a run that blows up mid-way.
    Returns the count of computations so far ({"n": ...})."""
    calls = {"n": 0}
    real = torch.nn.CrossEntropyLoss

    class PoisonedLoss(real):
        def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            calls["n"] += 1
            loss = super().forward(logits, labels)
            return loss * float("inf") if calls["n"] == at_call else loss

    monkeypatch.setattr("resnetlab.training.trainer.nn.CrossEntropyLoss", PoisonedLoss)
    return calls


def tiny_config(out: Path, **overrides: Any) -> TrainConfig:
    """ResNet-20 on the tiny bundle (48 images, batch 8: 6 iterations per epoch), on the CPU."""
    values = {"out": str(out), "epochs": 3, "max_iters": None, "batch_size": 8, "lr": 0.05,
              "device": "cpu", "quiet": True, "seed": 0}
    return resolve_config("paper", overrides={**values, **overrides})


def make_trainer(out: Path, bundle: DatasetBundle | None = None, **overrides: Any) -> Trainer:
    """A CPU ``Trainer`` of ``tiny_config`` on the tiny bundle, its run folder ready to write."""
    bundle = bundle if bundle is not None else make_tiny_bundle()
    device = torch.device("cpu")
    config = tiny_config(out, **overrides)
    config = replace(config, precision=resolve_precision(config.precision, device))
    run = RunFolder(out)
    run.prepare(resume=False, overwrite=False)
    run.open_log(quiet=True)
    return Trainer(config, bundle, build_model(config, bundle, device), run, Distributed(), device)


# (width, height, mode, format): landscape, portrait and square, every mode a photo folder meets
PHOTO_KINDS = [
    (120, 90, "RGB", "JPEG"), (72, 100, "RGB", "JPEG"), (96, 96, "L", "PNG"), (110, 80, "P", "PNG"),
    (80, 112, "RGBA", "PNG"), (100, 75, "CMYK", "JPEG"), (90, 120, "RGB", "WEBP"), (130, 70, "RGB", "PNG"),
]


SUFFIX = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


def photo_pixels(width: int, height: int, seed: int, tint: int) -> np.ndarray:
    """(H, W, 3) uint8: smooth colour gradients plus texture, so that resizing and JPEG matter."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.stack([x / width * 200, y / height * 200, (x + y) / (width + height) * 120 + tint], -1)
    waves = 30 * np.sin(x[..., None] / (3 + seed % 5) + np.arange(3)) * np.cos(y[..., None] / 4)
    return np.clip(base + waves + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def write_photo(path: Path, width: int, height: int, mode: str, fmt: str, seed: int, tint: int = 0) -> Path:
    image = Image.fromarray(photo_pixels(width, height, seed, tint), "RGB")
    if mode == "P":
        image = image.quantize(64)
    elif mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, fmt, **({"quality": 90} if fmt in ("JPEG", "WEBP") else {}))
    return path


def make_photo_folder(root: Path, classes=("ant", "bee"), per_class: int = 8, splits=("train", "val")) -> Path:
    """A folder of every kind of photo in ``PHOTO_KINDS``, in turn, per class and split."""
    seed = 0
    for split in splits:
        for c, name in enumerate(classes):
            for k in range(per_class):
                width, height, mode, fmt = PHOTO_KINDS[(k + c) % len(PHOTO_KINDS)]
                write_photo(root / split / name / f"{k:03d}.{SUFFIX[fmt]}", width, height, mode, fmt, seed, tint=100 * c)
                seed += 1
    return root


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
