"""Streaming with JPEGs decoded in batches on the training device (decode_jpeg on the CPU here: the
same code path minus the GPU), odd files decoded by PIL, bad files named."""

from __future__ import annotations

import json
import logging
import re

import pytest
import torch
from torchvision.io import encode_jpeg

from resnetlab.cli import main
from resnetlab.data import Augmentation, create_loader, device_decode, load_dataset
from resnetlab.data.photos import eval_resize
from resnetlab.errors import ResnetlabError

PIXELS = dict(mean=(0.0, 0.0, 0.0), std=(1 / 255,) * 3)  # normalisation that leaves pixel values as they are


def loaders(folder, **options):
    cached = load_dataset("folder", folder, image_size=32)
    streamed = load_dataset("folder", folder, image_size=32, stream=True)
    common = dict(PIXELS, seed=5, **options)
    return (create_loader(cached.train, 4, photo_views="per-photo", **common),
            create_loader(streamed.train, 4, photo_views="batched", num_workers=0, **common))


@pytest.mark.parametrize("augmentation", ["random-resized-crop", "scale"])
def test_streamed_batches_decoded_on_the_device_show_the_cached_views(photo_folder, augmentation) -> None:
    cached, streamed = loaders(photo_folder, train=True, augmentation=Augmentation(photo=augmentation))
    for epoch in (0, 1):
        for (x, y), (x2, y2) in zip(cached.batches(epoch), streamed.batches(epoch), strict=True):
            assert torch.equal(y, y2)
            assert (x - x2).abs().max() <= 4.0 + 1e-3  # decoder and resize rounding: a few levels, the same boxes
    epoch_one = list(streamed.batches(1))
    resumed = list(streamed.batches(1, start=2))
    assert len(resumed) == 2 and all(torch.equal(a[0], b[0]) for a, b in zip(epoch_one[2:], resumed))


@pytest.mark.parametrize("ten_crop", [False, True])
def test_streamed_evaluation_decoded_on_the_device_shows_the_cached_crops(photo_folder, ten_crop) -> None:
    cached, streamed = loaders(photo_folder)
    if ten_crop:
        cached, streamed = cached.with_ten_crop(), streamed.with_ten_crop()
    for (x, y), (x2, y2) in zip(cached.batches(0), streamed.batches(0), strict=True):
        assert x2.shape == x.shape and torch.equal(y, y2) and (x - x2).abs().max() <= 4.0 + 1e-3


def test_workers_send_the_bytes_of_jpegs_and_decode_the_rest(photo_folder) -> None:
    resize = eval_resize(32)
    rgb = device_decode.read_photo(str(photo_folder / "train/ant/000.jpg"), resize)
    cmyk = device_decode.read_photo(str(photo_folder / "train/ant/005.jpg"), resize)  # PHOTO_KINDS[5]: a CMYK JPEG
    png = device_decode.read_photo(str(photo_folder / "train/ant/002.png"), resize)
    assert rgb[1] and rgb[0].ndim == 1 and bytes(rgb[0][:2].tolist()) == b"\xff\xd8"
    assert not cmyk[1] and cmyk[0].shape == (3, 37, 49)  # 100x75 resized to the shorter side 37 on the CPU
    assert not png[1] and png[0].shape == (3, 37, 37)


def test_a_jpeg_the_device_refuses_is_decoded_by_pil_alone(photo_folder, monkeypatch) -> None:
    refused = photo_folder / "train/ant/000.jpg"
    marker = torch.frombuffer(bytearray(refused.read_bytes()), dtype=torch.uint8)
    real = device_decode.decode_jpeg

    def decode_jpeg(data, **kwargs):
        if any(torch.equal(d, marker) for d in (data if isinstance(data, list) else [data])):
            raise RuntimeError("Unsupported JPEG")
        return real(data, **kwargs)

    files = sorted(str(p) for p in (photo_folder / "train").rglob("*.*"))
    on_cpu_anyway = [p for p in files if not device_decode.read_photo(p, eval_resize(32))[1]]  # PNG, WebP, CMYK
    assert len(on_cpu_anyway) == 12  # of 16: two RGB JPEGs per class go as bytes
    by_pil: list[str] = []
    real_pil = device_decode.decode_photo
    monkeypatch.setattr(device_decode, "decode_jpeg", decode_jpeg)
    monkeypatch.setattr(device_decode, "decode_photo", lambda path, side, *rule: by_pil.append(path) or real_pil(path, side, *rule))
    cached, streamed = loaders(photo_folder)
    batches = list(streamed.batches(0))
    assert sorted(by_pil) == sorted(on_cpu_anyway + [str(refused)])  # that JPEG alone: the batch's others stay with the device
    assert sum(len(y) for _, y in batches) == 16
    for (x, y), (x2, y2) in zip(cached.batches(0), batches, strict=True):
        assert torch.equal(y, y2) and (x - x2).abs().max() <= 4.0 + 1e-3


@pytest.mark.parametrize("damage", ["header", "truncated"])
def test_a_bad_photo_is_named_once_or_skipped(photo_folder, caplog, damage) -> None:
    bad = photo_folder / "train/bee/000.jpg"
    bad.write_bytes(b"\xff\xd8\xff broken" if damage == "header" else bad.read_bytes()[:300])
    bundle = load_dataset("folder", photo_folder, image_size=32, stream=True)
    strict = create_loader(bundle.train, 4, **PIXELS, train=True, photo_views="batched", num_workers=0)
    with pytest.raises(ResnetlabError) as caught:  # the command line's spelling of the options
        list(strict.batches(0))
    assert re.search(r"cannot read image .*bee/000\.jpg .*--skip-bad-images", caught.value.for_command_line())
    lenient = create_loader(bundle.train, 4, **PIXELS, train=True, photo_views="batched", num_workers=0, skip_bad_images=True)
    with caplog.at_level(logging.WARNING):
        assert sum(len(y) for _, y in lenient.batches(0)) == 15
        assert sum(len(y) for _, y in lenient.batches(1)) == 15
    assert len([r for r in caplog.records if "bee/000.jpg" in r.getMessage()]) == 1  # once, though two epochs met it


def test_data_info_says_which_decoder_a_run_would_use(photo_folder, capsys) -> None:
    assert main(["data", "info", "--dataset", "folder", "--data-dir", str(photo_folder), "--stream", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["decoder"] == "PIL in worker processes"  # no GPU: decoding stays on the CPU
    assert main(["data", "info", "--dataset", "folder", "--data-dir", str(photo_folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["decoder"] == "PIL, once, into the memory cache"
    on_gpu = device_decode.photo_decoder("stream", torch.device("cuda"), batched=True)
    calls = "in batches" if device_decode.decodes_lists() else "one per call (this torchvision decodes no batches)"
    assert on_gpu.startswith(f"JPEGs {calls} by torchvision.io.decode_jpeg (nvjpeg on the GPU)")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torchvision 0.29's codecs, deprecated for torchcodec
def test_a_torchvision_that_decodes_no_lists_is_asked_once_and_then_given_one_file_a_call(monkeypatch) -> None:
    calls: list[str] = []
    real = device_decode.decode_jpeg

    def one_at_a_time(data, **kwargs):  # as torchvision 0.19's decode_jpeg
        calls.append(type(data).__name__)
        if isinstance(data, list):
            raise RuntimeError("image::decode_jpeg() Expected a value of type 'Tensor' for argument 'data'")
        return real(data, **kwargs)

    monkeypatch.setattr(device_decode, "decode_jpeg", one_at_a_time)
    device_decode.decodes_lists.cache_clear()
    try:
        jpeg = encode_jpeg(torch.full((3, 12, 10), 90, dtype=torch.uint8))
        first = device_decode.decode_jpegs([jpeg, jpeg], torch.device("cpu"))
        second = device_decode.decode_jpegs([jpeg], torch.device("cpu"))
        assert not device_decode.decodes_lists()
    finally:
        device_decode.decodes_lists.cache_clear()
    assert calls == ["list", "Tensor", "Tensor", "Tensor"]  # the probe's list, once; then each file alone
    assert [t.shape for t in first + second] == [(3, 12, 10)] * 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (nvjpeg)")
def test_on_a_gpu_nvjpeg_and_the_batched_crops_stay_near_the_cpu_path(photo_folder) -> None:
    cuda = torch.device("cuda")
    cached, streamed = loaders(photo_folder, train=True, device=cuda)
    on_gpu = create_loader(load_dataset("folder", photo_folder, image_size=32).train, 4, **PIXELS, seed=5, train=True, device=cuda,
                           photo_views="batched")
    for (x, y), (x2, y2), (x3, y3) in zip(cached.batches(0), streamed.batches(0), on_gpu.batches(0), strict=True):
        assert x2.device.type == x3.device.type == "cuda" and torch.equal(y, y2) and torch.equal(y, y3)
        assert (x - x3).abs().max() <= 1.0 + 1e-3  # the cache cut on the GPU: the resize's rounding alone
        assert (x - x2).abs().mean() < 1.0  # nvjpeg rounds its own way: a level on average at most
