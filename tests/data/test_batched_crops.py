"""Photo views cut in batches on the training device: torch's resize weights, the same boxes, the cache's place."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from resnetlab.data import Augmentation, create_loader, load_dataset, photo_loader, photo_pipeline
from resnetlab.data.batched_crops import cut_crops, resize_weights
from resnetlab.data.photo_crops import crop_rng, cut_crop, draw_crop
from resnetlab.errors import ResnetlabError

PIXELS = dict(mean=(0.0, 0.0, 0.0), std=(1 / 255,) * 3)  # normalisation that leaves pixel values as they are


@pytest.mark.parametrize("size, out", [(300, 224), (224, 224), (100, 224), (97, 32), (5, 7)])
def test_resize_weights_are_torchs_antialiased_bilinear_ones(size, out) -> None:
    lines = torch.eye(size)[None, :, :, None].expand(1, size, size, 2).contiguous()  # (1, size, size, 2): channel k, the k-th unit line
    expected = F.interpolate(lines, size=(out, 2), mode="bilinear", antialias=True, align_corners=False)[0, :, :, 0].T  # (out, size)
    weights = resize_weights(torch.tensor([size, size]), out, size + 3, torch.tensor([False, True]))
    assert torch.allclose(weights[0, :, :size], expected, atol=1e-6)
    assert torch.allclose(weights[1, :, :size], expected.flip(1), atol=1e-6)  # mirrored: the line read backwards
    assert not weights[:, :, size:].any()  # padding beyond the line takes no weight


def photos(count: int = 12) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    shapes = [(60 + 7 * k, 90 - 3 * k) for k in range(count)]
    smooth = [F.interpolate(torch.randint(0, 256, (1, 3, h // 6, w // 6), generator=gen).float(), size=(h, w), mode="bicubic")
              for h, w in shapes]  # photo-like: smooth, not noise
    return [x[0].clamp(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().permute(2, 0, 1) for x in smooth]  # channels-last strides


@pytest.mark.parametrize("augmentation", ["random-resized-crop", "scale"])
def test_batched_crops_are_the_per_photo_crops_up_to_rounding(augmentation) -> None:
    images = photos()
    views = [draw_crop(crop_rng(3, 1, k), x.shape[1], x.shape[2], 32, augmentation, True) for k, x in enumerate(images)]
    assert any(v.flip for v in views) and not all(v.flip for v in views)
    batched = cut_crops(images, views, 32, "cpu")
    single = torch.stack([cut_crop(x, v, 32) for x, v in zip(images, views)])
    assert batched.shape == (12, 3, 32, 32) and batched.is_contiguous(memory_format=torch.channels_last)
    difference = (batched.int() - single.int()).abs()
    assert difference.max() <= 1 and difference.float().mean() < 0.2


def cached_loader(folder, photo_views: str, **options):
    bundle = load_dataset("folder", folder, image_size=32)
    return create_loader(bundle.train, 4, **PIXELS, train=True, seed=5, photo_views=photo_views, **options)


@pytest.mark.parametrize("augmentation", ["random-resized-crop", "scale"])
def test_the_batched_loader_cuts_the_same_views_and_resumes_exactly(photo_folder, augmentation) -> None:
    aug = Augmentation(photo=augmentation)
    per_photo = cached_loader(photo_folder, "per-photo", augmentation=aug)
    batched = cached_loader(photo_folder, "batched", augmentation=aug)
    assert not per_photo.batched and batched.batched
    for epoch in (0, 1):
        pairs = list(zip(per_photo.batches(epoch), batched.batches(epoch), strict=True))
        for (x, y), (x2, y2) in pairs:
            assert torch.equal(y, y2) and (x - x2).abs().max() <= 1.0 + 1e-3  # one level of 255, colour noise alike
    epoch_one = list(batched.batches(1))
    resumed = list(batched.batches(1, start=2))
    assert len(resumed) == 2 and all(torch.equal(a[0], b[0]) for a, b in zip(epoch_one[2:], resumed))


def test_auto_cuts_in_batches_on_cuda_only_and_names_the_choices() -> None:
    assert photo_pipeline.batched_on("auto", torch.device("cuda")) and not photo_pipeline.batched_on("auto", torch.device("cpu"))
    assert photo_pipeline.batched_on("batched", torch.device("cpu")) and not photo_pipeline.batched_on("per-photo", torch.device("cuda"))
    with pytest.raises(ResnetlabError, match="photo_views must be one of auto, per-photo, batched, got 'gpu'"):
        photo_pipeline.batched_on("gpu", torch.device("cpu"))


def test_the_cache_goes_to_the_gpu_only_within_its_share_of_free_memory(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (4_000, 80_000))
    assert photo_loader.fits_on_device(1_000, torch.device("cuda"))
    assert not photo_loader.fits_on_device(1_001, torch.device("cuda"))
    assert not photo_loader.fits_on_device(1, torch.device("cpu"))  # a CPU's cache is where it is


@pytest.mark.parametrize("fits", [True, False])
def test_batched_crops_read_the_cache_where_it_was_placed(photo_folder, monkeypatch, fits) -> None:
    meta = torch.device("meta")  # stands in for a GPU
    monkeypatch.setattr(photo_loader, "fits_on_device", lambda nbytes, device: fits)
    loader = cached_loader(photo_folder, "batched", device=meta)
    x, y = next(loader.batches(0))
    assert x.device == meta and y.device == meta and x.shape == (4, 3, 32, 32)
    assert loader._source.pixels.device == (meta if fits else torch.device("cpu"))
