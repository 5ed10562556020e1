"""Shared fixtures: real data shipped beside the repository and tiny generated datasets.

Each area keeps its own fixtures in ``tests/<area>/conftest.py``; what they build is ``tests/builders.py``.
"""

from __future__ import annotations

import logging
import multiprocessing.process
import os
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from PIL import Image

from resnetlab.data.types import DatasetBundle
from tests.builders import CIFAR10_JPEG_TARBALL, FASHION_MNIST_DIR, make_photo_folder, make_tiny_bundle


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` run real CUDA code: without a GPU they are skipped, not failed."""
    if torch.cuda.is_available():
        return
    no_gpu = pytest.mark.skip(reason="needs a real CUDA GPU (torch.cuda.is_available() is False here)")
    for item in items:
        if item.get_closest_marker("gpu") is not None:  # not item.keywords: it holds folder names too
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


class QuickTierStartsAProcess(AssertionError):
    """A test outside the ``slow`` mark started a process (the quick tier runs without)."""


@pytest.fixture(autouse=True)
def quick_tier_starts_no_process(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The quick tier (``-m "not slow"``) starts no process: no subprocess, no DataLoader worker, no
    browser. A test that needs one is marked ``slow`` (the whole suite runs it), or made in-process."""
    if request.node.get_closest_marker("slow") is not None:
        return

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise QuickTierStartsAProcess(f"{request.node.nodeid} starts a process: mark it slow or keep it in-process")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", refuse)


@pytest.fixture(autouse=True)
def package_log_reset() -> Iterator[None]:
    """A run a test opened and never closed (``make_trainer``) stops logging into the next test."""
    package = logging.getLogger("resnetlab")
    before = (package.level, package.propagate, list(package.handlers))
    yield
    for handler in [h for h in package.handlers if h not in before[2]]:
        package.removeHandler(handler)
        handler.close()
    package.setLevel(before[0])
    package.propagate = before[1]


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


@pytest.fixture
def tiny_bundle() -> DatasetBundle:
    return make_tiny_bundle()


@pytest.fixture
def bundle() -> DatasetBundle:
    """The tiny learnable dataset, as training tests call it."""
    return make_tiny_bundle()


@pytest.fixture
def data_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's own empty image-folder cache (the data tests use it for every test)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("RESNETLAB_DATA", str(cache))
    return cache


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    """A folder of every kind of photo (JPEG, PNG, WebP; RGB, L, P, RGBA, CMYK) in train/ and val/."""
    return make_photo_folder(tmp_path / "photos")


@pytest.fixture
def cuda_gloo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A one-process group whose only backend is for CUDA tensors ("cuda:gloo"): a collective on a
    CPU tensor raises "No backend type associated with device type cpu", as it fails under nccl.
    Tests stand in a GPU by meta tensors (shapes only), which every collective takes."""
    dist.init_process_group("cuda:gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    if not _all_reduce_takes_meta_tensors():
        monkeypatch.setattr(dist, "all_reduce", _meta_sum_in_place(dist.all_reduce))
    try:
        yield
    finally:
        dist.destroy_process_group()


def _all_reduce_takes_meta_tensors() -> bool:
    try:
        dist.all_reduce(torch.zeros(1, device="meta"))
    except NotImplementedError:  # torch 2.4: its collectives have no meta kernel
        return False
    return True


def _meta_sum_in_place(all_reduce: Callable[..., Any]) -> Callable[..., Any]:
    """``all_reduce`` that leaves a meta tensor as it is: the sum over a one-process group."""

    def reduce(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        return None if tensor.device.type == "meta" else all_reduce(tensor, *args, **kwargs)

    return reduce


@pytest.fixture
def torchrun_env(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Set the variables torchrun gives each process."""

    def set_env(rank: int, world_size: int, local_rank: int | None = None) -> None:
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", str(world_size))
        monkeypatch.setenv("LOCAL_RANK", str(rank if local_rank is None else local_rank))

    return set_env


@pytest.fixture(scope="session")
def tiny_image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ImageFolder data set (train/<class>/*.png, test/<class>/*.png): 3 learnable classes, 16x16 RGB."""
    root = tmp_path_factory.mktemp("tiny-folder")
    bundle = make_tiny_bundle(num_classes=3, per_class=24, size=16)
    for split_name, split in (("train", bundle.train), ("test", bundle.test)):
        for i, (image, label) in enumerate(zip(split.images, split.labels)):
            target = root / split_name / bundle.classes[int(label)]
            target.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(target / f"{i:04d}.png")
    return root
