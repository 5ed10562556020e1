"""Streaming photos from disk: the cached loader's pixels bit for bit, resumable, bad files named."""

from __future__ import annotations

import json
import os
import re
import signal

import pytest
import torch
import yaml

from resnetlab.cli import main
from resnetlab.data import Augmentation, create_loader, load_dataset
from resnetlab.data.streaming import PhotoFiles, StreamingLoader
from resnetlab.errors import ResnetlabError
from resnetlab.training import TrainingInterrupted, resolve_config, train

MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)


def loaders(folder, workers: int = 0, **kwargs):
    cached = load_dataset("folder", folder, image_size=32)
    streamed = load_dataset("folder", folder, image_size=32, stream=True)
    common = dict(mean=MEAN, std=STD, seed=5, **kwargs)
    return create_loader(cached.train, 4, **common), create_loader(streamed.train, 4, num_workers=workers, **common), streamed


@pytest.mark.parametrize("workers", [0, pytest.param(2, marks=pytest.mark.slow)])  # worker processes: the whole suite
@pytest.mark.parametrize("augmentation", ["random-resized-crop", "scale"])
def test_streamed_batches_equal_cached_ones(photo_folder, workers, augmentation) -> None:
    cached, streamed, bundle = loaders(photo_folder, workers, train=True, augmentation=Augmentation(photo=augmentation))
    assert isinstance(streamed, StreamingLoader) and isinstance(bundle.train, PhotoFiles)
    assert bundle.extra["storage"] == "stream" and "as asked" in bundle.extra["storage_reason"]
    for epoch in (0, 1):
        for (x, y), (x2, y2) in zip(cached.batches(epoch), streamed.batches(epoch), strict=True):
            assert torch.equal(x, x2) and torch.equal(y, y2)
    tail = list(streamed.batches(1, start=2))  # a resumed epoch
    assert len(tail) == 2 and torch.equal(tail[0][0], list(cached.batches(1))[2][0])


def test_streamed_evaluation_and_ten_crops_equal_cached_ones(photo_folder) -> None:
    cached, streamed, _ = loaders(photo_folder)
    for a, b in ((cached, streamed), (cached.with_ten_crop(), streamed.with_ten_crop())):
        for (x, y), (x2, y2) in zip(a.batches(0), b.batches(0), strict=True):
            assert torch.equal(x, x2) and torch.equal(y, y2)


@pytest.mark.slow  # real processes or real data: the whole suite runs it, the quick tier does not
def test_statistics_of_a_streamed_folder_come_from_a_sample(photo_folder) -> None:
    cached = load_dataset("folder", photo_folder, image_size=32)
    streamed = load_dataset("folder", photo_folder, image_size=32, stream=True)
    assert streamed.mean == pytest.approx(cached.mean, abs=1e-9)  # 16 photos: the sample is all of them
    assert streamed.image_shape == (3, 32, 32) and len(streamed.test) == 16


@pytest.mark.slow  # real processes or real data: the whole suite runs it, the quick tier does not
def test_folder_over_the_memory_budget_streams_unless_told_not_to(photo_folder, capsys) -> None:
    bundle = load_dataset("folder", photo_folder, image_size=32, memory_budget=1000)
    assert isinstance(bundle.train, PhotoFiles) and "would not fit" in bundle.extra["storage_reason"]
    with pytest.raises(ResnetlabError) as caught:  # the command line's spelling of the options
        load_dataset("folder", photo_folder, image_size=32, memory_budget=1000, stream=False)
    assert re.search("--stream", caught.value.for_command_line())
    assert main(["data", "info", "--dataset", "folder", "--data-dir", str(photo_folder), "--stream", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["storage"] == "stream" and "as asked" in info["storage_reason"]


@pytest.mark.parametrize("workers", [0, pytest.param(2, marks=pytest.mark.slow)])  # worker processes: the whole suite
def test_a_bad_photo_is_named_or_skipped(photo_folder, workers) -> None:
    (photo_folder / "train" / "bee" / "000.jpg").write_bytes(b"\xff\xd8\xff broken")
    bundle = load_dataset("folder", photo_folder, image_size=32, stream=True)  # nothing is decoded ahead
    strict = create_loader(bundle.train, 4, mean=MEAN, std=STD, train=True, num_workers=workers)
    with pytest.raises(ResnetlabError) as caught:  # the command line's spelling of the options
        list(strict.batches(0))
    assert re.search(r"bee/000\.jpg.*--skip-bad-images", caught.value.for_command_line())
    lenient = create_loader(bundle.train, 4, mean=MEAN, std=STD, train=True, num_workers=0, skip_bad_images=True)
    assert sum(len(y) for _, y in lenient.batches(0)) == 15


def interrupt_at(iteration: int):
    def hook(i: int) -> None:
        if i == iteration:
            os.kill(os.getpid(), signal.SIGINT)
    return hook


@pytest.mark.slow  # real processes or real data: the whole suite runs it, the quick tier does not
def test_a_streamed_run_resumes_bit_identically(photo_folder, tmp_path) -> None:
    values = dict(model="resnet20", dataset="folder", data_dir=str(photo_folder), image_size=32, stream=True, workers=1,
                  epochs=2, max_iters=None, batch_size=4, lr=0.02, device="cpu", quiet=True)
    straight = train(resolve_config("paper", overrides={**values, "out": str(tmp_path / "a")}))
    with pytest.raises(TrainingInterrupted):
        train(resolve_config("paper", overrides={**values, "out": str(tmp_path / "b")}), on_iteration=interrupt_at(3))
    resumed = train(resolve_config("paper", overrides={**values, "out": str(tmp_path / "b")}), resume=True)
    assert resumed["final"] == straight["final"] and resumed["iterations"] == 8
    a = torch.load(tmp_path / "a" / "checkpoints" / "last.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "checkpoints" / "last.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert yaml.safe_load((tmp_path / "b" / "config.yaml").read_text())["stream"] is True
