"""The streaming loader: uint8 to the device and normalised there, labels without waiting, workers kept."""

from __future__ import annotations

import pytest
import torch

from resnetlab.data import create_loader, load_dataset
from resnetlab.data.photo_pipeline import PhotoPipeline
from resnetlab.data.streaming import PhotoStream
from tests.builders import make_photo_folder

pytestmark = pytest.mark.gpu_emulated

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)


@pytest.fixture
def streamed(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNETLAB_DATA", str(tmp_path / "cache"))
    return load_dataset("folder", make_photo_folder(tmp_path / "f", per_class=3), image_size=32, stream=True)


def test_workers_hand_over_uint8_and_the_device_normalises_as_the_cached_loader_does(streamed, tmp_path) -> None:
    stream = PhotoStream(streamed.test, PhotoPipeline(streamed.test.crop))
    image, *_ = stream[0, 0]
    assert image.dtype == torch.uint8 and image.shape == (1, 3, 32, 32)  # a quarter of float32's bytes to pin and copy
    x, labels = next(create_loader(streamed.test, 6, mean=MEAN, std=STD, num_workers=0).batches(0))
    cached = load_dataset("folder", tmp_path / "f", image_size=32)
    y, same_labels = next(create_loader(cached.test, 6, mean=MEAN, std=STD).batches(0))
    assert torch.equal(labels, same_labels) and torch.equal(x, y)


def test_labels_and_images_go_to_the_device_without_waiting(streamed, monkeypatch) -> None:
    meta = torch.device("meta")  # stands in for a GPU
    streaming = create_loader(streamed.test, 4, mean=MEAN, std=STD, device=meta, num_workers=0)
    blocking: list[torch.dtype] = []
    real = torch.Tensor.to

    def to(tensor, *args, **kwargs):
        moved = real(tensor, *args, **kwargs)
        if tensor.device.type == "cpu" and moved.device == meta and not kwargs.get("non_blocking"):
            blocking.append(tensor.dtype)
        return moved

    monkeypatch.setattr(torch.Tensor, "to", to)
    batches = list(streaming.batches(0))
    assert len(batches) == 2 and all(x.device == meta and y.device == meta for x, y in batches)
    assert blocking == []


@pytest.mark.slow  # worker processes: the whole suite runs it, the quick tier does not
def test_worker_processes_live_across_epochs(streamed) -> None:
    streaming = create_loader(streamed.train, 3, mean=MEAN, std=STD, train=True, num_workers=1)
    first = list(streaming.batches(0))
    loader = streaming._data_loader()
    workers = [w.pid for w in loader._iterator._workers]
    second = list(streaming.batches(1))
    assert loader.persistent_workers and [w.pid for w in loader._iterator._workers] == workers
    assert len(first) == len(second) == 2
    assert not torch.equal(torch.cat([b[0] for b in first]), torch.cat([b[0] for b in second]))  # epoch 1's own plan
