"""The streaming loader: uint8 to the device and normalised there, labels without waiting, workers kept."""

from __future__ import annotations

import pytest
import torch

from resnetlab.data import StreamingLoader, TensorLoader, load_dataset
from tests.data.conftest import make_image_folder

pytestmark = pytest.mark.gpu_emulated

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)


def test_workers_hand_over_uint8_and_the_device_normalises_as_the_tensor_loader_does(tmp_path) -> None:
    root = make_image_folder(tmp_path / "f", per_class=4)
    streaming = StreamingLoader(root / "test", 12, mean=MEAN, std=STD, num_workers=0)
    image, _ = streaming.dataset[0, 0]
    assert image.dtype == torch.uint8  # a quarter of float32's bytes to pin and copy
    x, labels = next(streaming.batches(0))
    bundle = load_dataset("folder", root)
    y, same_labels = next(TensorLoader(bundle.test, 12, mean=MEAN, std=STD).batches(0))
    assert torch.equal(labels, same_labels) and torch.allclose(x, y, atol=1e-6)


def test_labels_and_images_go_to_the_device_without_waiting(tmp_path, monkeypatch) -> None:
    root = make_image_folder(tmp_path / "f", per_class=2)
    meta = torch.device("meta")  # stands in for a GPU
    streaming = StreamingLoader(root / "test", 3, mean=MEAN, std=STD, device=meta, num_workers=0)
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


def test_worker_processes_live_across_epochs(tmp_path) -> None:
    root = make_image_folder(tmp_path / "w", per_class=2)
    streaming = StreamingLoader(root / "train", 3, mean=MEAN, std=STD, train=True, num_workers=1)
    first = list(streaming.batches(0))
    workers = [w.pid for w in streaming.loader._iterator._workers]
    second = list(streaming.batches(1))
    assert streaming.loader.persistent_workers and [w.pid for w in streaming.loader._iterator._workers] == workers
    assert len(first) == len(second) == 2
    assert not torch.equal(torch.cat([b[0] for b in first]), torch.cat([b[0] for b in second]))  # epoch 1's own plan
