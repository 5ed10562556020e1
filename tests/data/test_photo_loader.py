"""The photo loader: torchvision's crop distribution, determinism, resume, ten crops."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision import transforms

from resnetlab.data import Augmentation, create_loader, load_dataset
from resnetlab.data.photo_crops import crop_rng, draw_crop, random_resized_box, scale_jitter_box, ten_crop_boxes
from resnetlab.data.photo_loader import PhotoLoader
from resnetlab.data.photos import PhotoSet

MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)


def test_random_resized_boxes_follow_torchvision() -> None:
    """Same bounds and, over many draws, the same area and aspect statistics as RandomResizedCrop.get_params."""
    boxes = torch.tensor([random_resized_box(crop_rng(0, 0, i), 256, 341) for i in range(4000)]).double()
    top, left, h, w = boxes.T
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 256).all() and (left + w <= 341).all()
    assert (h >= 1).all() and (w >= 1).all()
    torch.manual_seed(0)
    image = torch.zeros(3, 256, 341)
    ref = torch.tensor([transforms.RandomResizedCrop.get_params(image, (0.08, 1.0), (3 / 4, 4 / 3)) for _ in range(4000)]).double()
    ours_area, ref_area = (h * w / (256 * 341)), ref[:, 2] * ref[:, 3] / (256 * 341)
    assert abs(ours_area.mean() - ref_area.mean()) < 0.02 and abs(ours_area.std() - ref_area.std()) < 0.02
    ours_ratio, ref_ratio = (w / h).log(), (ref[:, 3] / ref[:, 2]).log()
    assert abs(ours_ratio.mean() - ref_ratio.mean()) < 0.02
    assert ours_ratio.abs().max() <= math.log(4 / 3) + 0.02  # within the allowed ratios, up to rounding


def test_extreme_panorama_falls_back_to_torchvisions_centre_box() -> None:
    """A 10x400 strip: no box of 8%+ of the area with a ratio in 3/4..4/3 fits, so the centred fallback."""
    assert random_resized_box(crop_rng(0, 0, 1), 10, 400) == (0, (400 - 13) // 2, 10, 13)


def test_scale_jitter_boxes_are_squares_of_the_paper_scales() -> None:
    boxes = [scale_jitter_box(crop_rng(0, 0, i), 256, 300, 224) for i in range(500)]
    sides = torch.tensor([b[2] for b in boxes])
    assert all(b[2] == b[3] and b[0] + b[2] <= 256 and b[1] + b[3] <= 300 for b in boxes)
    # shorter side s in [256, 480] for a 224 crop: a 224 crop of it is 224 * 256 / s cached pixels
    assert sides.max() <= 224 and sides.min() >= round(224 * 256 / 480)


def test_a_view_depends_on_seed_epoch_and_index_alone() -> None:
    view = draw_crop(crop_rng(3, 2, 17), 256, 300, 224, "scale", True)
    assert view == draw_crop(crop_rng(3, 2, 17), 256, 300, 224, "scale", True)
    assert view != draw_crop(crop_rng(3, 3, 17), 256, 300, 224, "scale", True)
    assert any(abs(c) > 1e-4 for c in view.colour)  # PCA colour noise
    assert draw_crop(crop_rng(3, 2, 17), 256, 300, 224, "random-resized-crop", True).colour == (0.0, 0.0, 0.0)


@pytest.fixture
def photos(photo_folder) -> PhotoSet:
    return load_dataset("folder", photo_folder, image_size=32).train


def loader(photos: PhotoSet, **kwargs) -> PhotoLoader:
    return create_loader(photos, 4, mean=MEAN, std=STD, train=True, seed=3, **kwargs)


@pytest.mark.parametrize("augmentation", ["random-resized-crop", "scale"])
def test_batches_are_a_function_of_seed_epoch_and_position(photos, augmentation) -> None:
    aug = Augmentation(photo=augmentation)
    full = list(loader(photos, augmentation=aug).batches(epoch=2))
    assert len(full) == 4 and full[0][0].shape == (4, 3, 32, 32)
    again = list(loader(photos, augmentation=aug).batches(epoch=2, start=2))  # a resumed epoch
    for (x, y), (x2, y2) in zip(full[2:], again):
        assert torch.equal(x, x2) and torch.equal(y, y2)
    other_epoch = next(iter(loader(photos, augmentation=aug).batches(epoch=3)))[0]
    assert not torch.equal(full[0][0], other_epoch)


def test_ranks_split_each_global_batch(photos) -> None:
    whole = [y for _, y in loader(photos).batches(1)]
    parts = [[y for _, y in loader(photos, rank=r, world_size=2).batches(1)] for r in (0, 1)]
    for b, labels in enumerate(whole):
        assert sorted(labels.tolist()) == sorted(parts[0][b].tolist() + parts[1][b].tolist())


def test_evaluation_is_the_centre_crop_normalised(photos) -> None:
    ev = create_loader(photos, 5, mean=MEAN, std=STD)
    x, _ = next(iter(ev.batches(0)))
    c, h, w = photos.shapes[0].tolist()
    top, left = int(round((h - 32) / 2.0)), int(round((w - 32) / 2.0))
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    expected = (photos.image(0)[:, top : top + 32, left : left + 32].float() / 255 - mean) / std
    assert torch.allclose(x[0], expected, atol=1e-5)


def test_ten_crops_are_the_corners_centre_and_mirrors(photos) -> None:
    ev = create_loader(photos, 3, mean=MEAN, std=STD, ten_crop=True)
    x, labels = next(iter(ev.batches(0)))
    assert x.shape == (3, 10, 3, 32, 32) and len(labels) == 3
    centre = next(iter(create_loader(photos, 3, mean=MEAN, std=STD).batches(0)))[0]
    assert torch.allclose(x[:, 4], centre) and torch.equal(x[:, 9], x[:, 4].flip(-1))
    c, h, w = photos.shapes[0].tolist()
    assert ten_crop_boxes(h, w, 32)[3] == (h - 32, w - 32)


def test_copies_and_cutout_are_refused_for_photos(photos) -> None:
    from resnetlab.errors import ResnetlabError

    with pytest.raises(ResnetlabError, match="photo folders"):
        loader(photos, augmentation=Augmentation(copies=2))
