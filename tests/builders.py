"""What tests build: tiny datasets, image and photo folders, archives in the official formats,
checkpoints, configs, trainers and run folders, and a fake CUDA runtime.

Plain functions, imported by the tests that need them; the fixtures that wrap them are in
``tests/conftest.py`` and each folder's ``conftest.py``.
"""

from __future__ import annotations

import csv
import functools
import gzip
import importlib.util
import io
import json
import math
import pickle
import struct
import tarfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any
from unittest import mock

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from resnetlab.checkpoint import save_checkpoint
from resnetlab.data import DatasetBundle
from resnetlab.data.types import ImageSet
from resnetlab.models import create_model
from resnetlab.precision import resolve_precision
from resnetlab.runs import METRICS_COLUMNS, RunFolder
from resnetlab.training import TrainConfig, resolve_config
from resnetlab.training.build import build_trainer
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
    torch.manual_seed(config.seed)
    return build_trainer(config, bundle, build_model(config, bundle, device), run=run, ctx=Distributed(), device=device)


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
    ]
    if hasattr(torch.cuda.random, "is_initialized"):  # newer get_rng_state asks it; torch 2.4's module has no such name
        patches.append((torch.cuda.random, "is_initialized", lambda: True))
    with ExitStack() as stack:
        for target, name, value in patches:
            stack.enter_context(mock.patch.object(target, name, value))
        yield generators


PRETRAIN_TRAIN, PRETRAIN_TEST = 80, 40  # images per class for the 10-class source run


FINETUNE_TRAIN, FINETUNE_TEST = 100, 40  # per class for the 5-class fine-tuning, from other images


FINETUNE_CLASSES = ["airplane", "automobile", "ship", "truck", "frog"]


def make_checkpoint(path: Path, *, model: str = "resnet20", classes: list[str] | None = None,
                    input_size: tuple[int, int, int] = (3, 16, 16), seed: int = 0, **extra: Any) -> Path:
    """A checkpoint in our format around a freshly initialised model (no training needed)."""
    classes = classes or ["cat", "dog", "fox"]
    torch.manual_seed(seed)
    net = create_model(model, num_classes=len(classes), in_channels=input_size[0])
    save_checkpoint({
        "model": {"name": model, "num_classes": len(classes), "in_channels": input_size[0], "options": {}},
        "classes": classes, "input_size": list(input_size),
        "normalization": {"mean": [0.5] * input_size[0], "std": [0.25] * input_size[0]},
        "dataset": {"name": "folder", "data_dir": None}, "config": {}, "state_dict": net.state_dict(), **extra,
    }, path)
    return path


def write_image(path: Path, size: tuple[int, int] = (16, 16), mode: str = "RGB", seed: int = 0) -> Path:
    gen = torch.Generator().manual_seed(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = torch.randint(0, 256, (size[1], size[0], channels), generator=gen, dtype=torch.uint8).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels[:, :, 0] if mode == "L" else pixels, mode).save(path)
    return path


CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cifar_pixels(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)


def _pickle_member(tar: tarfile.TarFile, name: str, obj: object) -> None:
    data = pickle.dumps(obj, protocol=2)  # the official batches are protocol-2 pickles
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def make_cifar10_tarball(path: Path, per_batch: int = 20) -> dict:
    """``cifar-10-python.tar.gz`` layout: cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}."""
    expected = {"train": [], "train_labels": [], "test": None, "test_labels": None}
    with tarfile.open(path, "w:gz") as tar:
        _pickle_member(tar, "cifar-10-batches-py/batches.meta", {
            b"label_names": [c.encode() for c in CIFAR10_CLASSES], b"num_cases_per_batch": per_batch, b"num_vis": 3072})
        for i in range(1, 7):
            name = f"data_batch_{i}" if i < 6 else "test_batch"
            data = cifar_pixels(per_batch, seed=i)
            labels = [int(v) for v in np.random.default_rng(100 + i).integers(0, 10, per_batch)]
            _pickle_member(tar, f"cifar-10-batches-py/{name}", {
                b"batch_label": f"{name} of 6".encode(), b"labels": labels, b"data": data,
                b"filenames": [f"img_{i}_{k}.png".encode() for k in range(per_batch)]})
            if i < 6:
                expected["train"].append(data)
                expected["train_labels"] += labels
            else:
                expected["test"], expected["test_labels"] = data, labels
    expected["train"] = np.concatenate(expected["train"])
    return expected


def make_cifar100_tarball(path: Path, n: int = 30) -> dict:
    """``cifar-100-python.tar.gz`` layout: cifar-100-python/{train, test, meta} with fine/coarse labels."""
    rng = np.random.default_rng(7)
    out = {}
    with tarfile.open(path, "w:gz") as tar:
        _pickle_member(tar, "cifar-100-python/meta", {
            b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]})
        for split in ("train", "test"):
            data, fine = cifar_pixels(n, seed=len(split)), [int(v) for v in rng.integers(0, 100, n)]
            _pickle_member(tar, f"cifar-100-python/{split}", {
                b"filenames": [b"x.png"] * n, b"batch_label": b"training batch 1 of 1", b"fine_labels": fine,
                b"coarse_labels": [f // 5 for f in fine], b"data": data})
            out[split], out[f"{split}_labels"] = data, fine
    return out


def write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def make_idx_files(folder: Path, n_train: int = 50, n_test: int = 20) -> dict:
    """The four official gzipped IDX files (magic 2051 images, 2049 labels)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images, labels = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images, 2051)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels, 2049)
        out[prefix] = (images, labels)
    return out


@functools.cache
def experiment(name: str) -> ModuleType:
    """``experiments/<name>.py`` loaded once as a module."""
    spec = importlib.util.spec_from_file_location(name, REPO / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one intra-op thread: on a shared 2-core machine, two OpenMP threads that spin-wait
    for each other made a tiny training run 15x slower (27 s instead of 1.7 s)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def fake_run(folder: Path, model: str, *, epochs: int = 6, iters_per_epoch: int = 100, params: int = 270_000,
             final_test_acc: float = 0.9, final_train_acc: float = 0.95, train_seconds: float = 125.0,
             recipe: str = "paper", dataset: str = "cifar10", finished: bool = True,
             model_options: dict[str, Any] | None = None) -> Path:
    """A run folder with plausible curves ending at the given accuracies, lr divided by 10 at 50% and 75%."""
    folder.mkdir(parents=True, exist_ok=True)
    command = f"resnetlab train --model {model} --epochs {epochs} --out {folder}"
    config = {"model": model, "dataset": dataset, "data_dir": None, "out": str(folder), "recipe": recipe,
              "epochs": epochs, "batch_size": 128, "lr": 0.1, "seed": 0, "model_options": model_options or {}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    rows = []
    for e in range(epochs):
        progress = (e + 1) / epochs
        lr = 0.1 * (0.1 if progress > 0.5 else 1) * (0.1 if progress > 0.75 else 1)
        train_err = (1 - final_train_acc) + (0.8 - (1 - final_train_acc)) * math.exp(-4 * progress) * (1 - progress)
        test_err = (1 - final_test_acc) + (0.8 - (1 - final_test_acc)) * math.exp(-3 * progress) * (1 - progress)
        rows.append({"epoch": e + 1, "iteration": (e + 1) * iters_per_epoch, "lr": lr,
                     "train_loss": 2.3 * train_err, "train_acc": 1 - train_err, "val_loss": "", "val_acc": "",
                     "test_loss": 2.3 * test_err, "test_acc": 1 - test_err,
                     "epoch_seconds": train_seconds / epochs, "images_per_second": 430.0})
    with (folder / "metrics.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRICS_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    if finished:
        last = rows[-1]
        summary: dict[str, Any] = {
            "model": model, "dataset": dataset, "epochs": epochs, "iterations": epochs * iters_per_epoch,
            "params": params, "world_size": 1, "train_seconds": train_seconds, "images_per_second": 430.0,
            "final": {"train_loss": last["train_loss"], "train_acc": final_train_acc,
                      "test_loss": last["test_loss"], "test_acc": final_test_acc},
            "recipe": recipe, "command": command, "classes": [f"c{i}" for i in range(10)],
        }
        (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    return folder


def tiny_train_overrides(data_dir: Path) -> dict[str, Any]:
    """A real training run of a few seconds on ``tiny_image_folder``."""
    return {"dataset": "folder", "data_dir": str(data_dir), "epochs": 2, "batch_size": 16, "device": "cpu",
            "quiet": True, "seed": 0}


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def fake_checkpoint(run: Path, data_dir: Path, model: str = "resnet20") -> Path:
    """An untrained but well-formed checkpoint (checkpoint module format) for ``tiny_image_folder``."""
    from resnetlab.checkpoint import save_checkpoint
    from resnetlab.models import create_model

    path = run / "checkpoints" / "last.pt"
    save_checkpoint({
        "model": {"name": model, "num_classes": 3, "in_channels": 3, "options": {}},
        "classes": ["class0", "class1", "class2"], "normalization": {"mean": [0.4] * 3, "std": [0.25] * 3},
        "input_size": [3, 16, 16], "dataset": {"name": "folder", "data_dir": str(data_dir)}, "config": {},
        "state_dict": create_model(model, num_classes=3).state_dict(),
    }, path)
    return path
