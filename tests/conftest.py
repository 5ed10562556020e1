"""Shared fixtures: real data shipped beside the repository and tiny generated datasets.

Each area keeps its own fixtures in ``tests/<area>/conftest.py``.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image

from resnetlab.data.types import DatasetBundle, ImageSet

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
CIFAR10_JPEG_TARBALL = SHARED_DATA / "cifar10-jpeg.tar.gz"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` run real CUDA code: without a GPU they are skipped, not failed."""
    if torch.cuda.is_available():
        return
    no_gpu = pytest.mark.skip(reason="needs a real CUDA GPU (torch.cuda.is_available() is False here)")
    for item in items:
        if item.get_closest_marker("gpu") is not None:  # not item.keywords: it holds folder names (tests/gpu)
            item.add_marker(no_gpu)


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread for the whole session: on two cores shared with other jobs, two spinning
    OpenMP threads made a resnet20 training step 7x slower (0.74 s vs 0.11 s) than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session", autouse=True)
def no_native_bf16() -> Iterator[None]:
    """The suite gives the same numbers on every machine: ``precision: auto`` is fp32, as on a CPU
    without native bf16, unless a test says otherwise (tests/training/test_precision.py)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("resnetlab.precision.cpu_has_native_bf16", lambda: False)
        yield


@pytest.fixture(scope="session", autouse=True)
def private_data_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Image-folder caches and downloads go to a session folder, not the user's ~/.cache/resnetlab
    (subprocesses inherit it): a test run must leave nothing behind."""
    cache = tmp_path_factory.mktemp("resnetlab-cache")
    before = os.environ.get("RESNETLAB_DATA")
    os.environ["RESNETLAB_DATA"] = str(cache)
    yield cache
    if before is None:
        os.environ.pop("RESNETLAB_DATA", None)
    else:
        os.environ["RESNETLAB_DATA"] = before


@pytest.fixture(scope="session")
def cifar10_jpeg_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared CIFAR-10 JPEG copy unpacked once per test session (train/ and test/ inside)."""
    if not CIFAR10_JPEG_TARBALL.is_file():
        pytest.skip(f"{CIFAR10_JPEG_TARBALL} not found (it ships in ../shared/data beside the repo)")
    target = tmp_path_factory.mktemp("cifar10-jpeg")
    with tarfile.open(CIFAR10_JPEG_TARBALL) as tar:
        tar.extractall(target, filter="data")
    roots = [p.parent for p in target.rglob("train") if p.is_dir()]
    return roots[0]


@pytest.fixture(scope="session")
def fashion_mnist_dir() -> Path:
    if not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST not installed: apt-get install dataset-fashion-mnist")
    return FASHION_MNIST_DIR


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


@pytest.fixture
def tiny_bundle() -> DatasetBundle:
    return make_tiny_bundle()


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
