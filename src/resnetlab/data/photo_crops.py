"""The crops of a photo: training's random crop, drawn from (seed, epoch, index) alone, and
evaluation's centre crop and ten crops. One definition of each.

Every photo loader draws its training crops here, the cached and the streaming one, cutting photo
by photo or in batches (``batched_crops``), so that all of them cut the very same boxes: a resumed
run continues where it stopped, and a streamed run sees what a cached one sees.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

RRC_SCALE = (0.08, 1.0)  # torchvision's RandomResizedCrop defaults
RRC_RATIO = (3 / 4, 4 / 3)
RRC_TRIES = 10
PAPER_SCALE = (256, 480)  # shorter side for a 224 crop (He et al. 2016, Sec. 3.4; Simonyan & Zisserman)
# AlexNet's PCA colour augmentation (Krizhevsky et al. 2012), in [0, 1] pixel units on ImageNet's RGB.
PCA_STD = 0.1
PCA_EIGVAL = (0.2175, 0.0188, 0.0045)
PCA_EIGVEC = ((-0.5675, 0.7192, 0.4009), (-0.5808, -0.0045, -0.8140), (-0.5836, -0.6948, 0.4203))


class PhotoCrop(NamedTuple):
    """One photo's training crop: a box of the cached photo, resized to S x S, maybe mirrored, plus
    an RGB offset (in [0, 1] units; zeros without PCA colour noise)."""

    top: int
    left: int
    height: int
    width: int
    flip: bool
    colour: tuple[float, float, float]


def crop_rng(seed: int, epoch: int, index: int) -> random.Random:
    """The generator of photo ``index``'s crop in ``epoch``: a function of the three numbers alone, so
    that a crop does not depend on which process or worker draws it, nor in which order."""
    return random.Random((seed * 1_000_003 + epoch) * 10_000_000_019 + index)


def draw_crop(rng: random.Random, height: int, width: int, crop: int, augmentation: str, flip: bool) -> PhotoCrop:
    """A photo's training crop: ``RandomResizedCrop``'s box (or the paper's scale box), a flip with
    probability 1/2, and for the paper's augmentation the PCA colour offset."""
    if augmentation == "scale":
        box = scale_jitter_box(rng, height, width, crop)
        alphas = [rng.gauss(0.0, PCA_STD) * v for v in PCA_EIGVAL]
        colour = tuple(sum(PCA_EIGVEC[c][k] * alphas[k] for k in range(3)) for c in range(3))
    else:
        box, colour = random_resized_box(rng, height, width), (0.0, 0.0, 0.0)
    mirrored = rng.random() < 0.5
    return PhotoCrop(*box, flip and mirrored, colour)  # the coin is tossed either way, so flip=False keeps the boxes


def random_resized_box(rng: random.Random, height: int, width: int, scale: tuple[float, float] = RRC_SCALE,
                       ratio: tuple[float, float] = RRC_RATIO) -> tuple[int, int, int, int]:
    """(top, left, h, w) drawn as ``RandomResizedCrop.get_params`` draws it: ten tries of an area
    fraction and a log-uniform aspect ratio, the first that fits wins; else the largest centred
    box of an allowed ratio."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(RRC_TRIES):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, height - h), rng.randint(0, width - w), h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def scale_jitter_box(rng: random.Random, height: int, width: int, crop: int) -> tuple[int, int, int, int]:
    """A square box of the paper's scale augmentation, in cached-photo pixels.

    Resizing a photo to a random shorter side s in [256, 480] * S/224 and cutting a random S crop
    is the same as cutting a random square of side S * r / s from the cached photo (shorter side
    r) and resizing it to S; so no photo is ever resized whole.
    """
    low, high = (round(v * crop / 224) for v in PAPER_SCALE)
    short = min(height, width)
    side = min(short, max(1, round(crop * short / rng.randint(low, high))))
    return rng.randint(0, height - side), rng.randint(0, width - side), side, side


def cut_crop(image: torch.Tensor, box: PhotoCrop, crop: int) -> torch.Tensor:
    """uint8 (C, S, S): ``box`` of ``image`` (C, H, W), mirrored or not, resized to S x S with
    torch's antialiased bilinear uint8 kernel (fastest on channels-last strides, as the cache has)."""
    pixels = image[None, :, box.top : box.top + box.height, box.left : box.left + box.width]
    if box.flip:
        pixels = pixels.flip(-1)  # mirroring the box before resizing it: the same crop, up to rounding, and cheaper
    return F.interpolate(pixels, size=(crop, crop), mode="bilinear", antialias=True, align_corners=False)[0]


def stack_channels_last(crops: Sequence[torch.Tensor]) -> torch.Tensor:
    """uint8 (B, C, S, S) in channels-last layout from (C, S, S) crops: the layout the model runs in."""
    out = torch.empty(len(crops), *crops[0].shape, dtype=crops[0].dtype, memory_format=torch.channels_last)
    for k, crop in enumerate(crops):
        out[k] = crop
    return out


def centre_crop(image: torch.Tensor, crop: int) -> torch.Tensor:
    """uint8 (C, S, S): the centre S x S of ``image`` (C, H, W), as torchvision's ``CenterCrop``."""
    return TF.center_crop(image, [crop, crop])


def centre_crops(images: Sequence[torch.Tensor], crop: int, channels: int = 3) -> torch.Tensor:
    """uint8 (B, C, S, S): the centre crop of each image (none: an empty batch of ``channels``)."""
    if not images:
        return torch.empty(0, channels, crop, crop, dtype=torch.uint8)
    return torch.stack([centre_crop(image, crop) for image in images])


def ten_crops(image: torch.Tensor, crop: int) -> torch.Tensor:
    """uint8 (10, C, S, S): the four corner crops and the centre crop of ``image``, then their mirrors."""
    crops = [image[:, top : top + crop, left : left + crop] for top, left in ten_crop_boxes(image.shape[1], image.shape[2], crop)]
    return torch.stack(crops + [c.flip(-1) for c in crops])


def ten_crop_boxes(height: int, width: int, crop: int) -> list[tuple[int, int]]:
    """(top, left) of the four corner crops and the centre crop (torchvision's ``five_crop`` order)."""
    centre = (int(round((height - crop) / 2.0)), int(round((width - crop) / 2.0)))
    return [(0, 0), (0, width - crop), (height - crop, 0), (height - crop, width - crop), centre]
