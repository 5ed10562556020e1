"""Training and evaluation batches from cached photos (``PhotoSet``), with the same contract as
``TensorLoader``: ``len``, ``batches(epoch, start)``, the global batch split over ranks.

Training: torchvision's reference augmentation (``RandomResizedCrop(S)``, scale 0.08-1, ratio
3/4-4/3, then a horizontal flip) or the paper's (Sec. 3.4: shorter side random in [256, 480]
scaled to S, a random S crop, a flip, PCA colour noise). The order of an epoch comes from
(seed, epoch); every photo's crop, flip and colour noise from a generator seeded by (seed,
epoch, index) alone, so an interrupted run resumes bit-identically and the streaming loader,
which decodes photos in worker processes, draws the very same views. Evaluation: the centre S crop of the cached photo (which
was resized as ``predict`` resizes), or the paper's 10 crops (corners and centre, and mirrors).
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from resnetlab.data.loader import Augmentation, Batches, LoaderOptions
from resnetlab.errors import ResnetlabError

RRC_SCALE = (0.08, 1.0)  # torchvision's RandomResizedCrop defaults
RRC_RATIO = (3 / 4, 4 / 3)
RRC_TRIES = 10
PAPER_SCALE = (256, 480)  # shorter side for a 224 crop (He et al. 2016, Sec. 3.4; Simonyan & Zisserman)
# AlexNet's PCA colour augmentation (Krizhevsky et al. 2012), in [0, 1] pixel units on ImageNet's RGB.
PCA_STD = 0.1
PCA_EIGVAL = (0.2175, 0.0188, 0.0045)
PCA_EIGVEC = ((-0.5675, 0.7192, 0.4009), (-0.5808, -0.0045, -0.8140), (-0.5836, -0.6948, 0.4203))


class PhotoView(NamedTuple):
    """One photo's training view: a box of the cached photo, resized to S x S, maybe mirrored, plus
    an RGB offset (in [0, 1] units; zeros without PCA colour noise)."""

    top: int
    left: int
    height: int
    width: int
    flip: bool
    colour: tuple[float, float, float]


def view_rng(seed: int, epoch: int, index: int) -> random.Random:
    """The generator of photo ``index``'s view in ``epoch``: a function of the three numbers alone, so
    that a view does not depend on which process or worker draws it, nor in which order."""
    return random.Random((seed * 1_000_003 + epoch) * 10_000_000_019 + index)


def draw_view(rng: random.Random, height: int, width: int, crop: int, augmentation: str, flip: bool) -> PhotoView:
    """A photo's training view: ``RandomResizedCrop``'s box (or the paper's scale box), a flip with
    probability 1/2, and for the paper's augmentation the PCA colour offset."""
    if augmentation == "scale":
        box = scale_jitter_box(rng, height, width, crop)
        alphas = [rng.gauss(0.0, PCA_STD) * v for v in PCA_EIGVAL]
        colour = tuple(sum(PCA_EIGVEC[c][k] * alphas[k] for k in range(3)) for c in range(3))
    else:
        box, colour = random_resized_box(rng, height, width), (0.0, 0.0, 0.0)
    mirrored = rng.random() < 0.5
    return PhotoView(*box, flip and mirrored, colour)  # the coin is tossed either way: views stay as they were


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


def cut_view(image: torch.Tensor, view: PhotoView, crop: int) -> torch.Tensor:
    """uint8 (C, S, S): ``view``'s box of ``image`` (C, H, W), mirrored or not, resized to S x S with
    torch's antialiased bilinear uint8 kernel (fastest on channels-last strides, as the cache has)."""
    box = image[None, :, view.top : view.top + view.height, view.left : view.left + view.width]
    if view.flip:
        box = box.flip(-1)  # mirroring the box before resizing it: the same view, up to rounding, and cheaper
    return F.interpolate(box, size=(crop, crop), mode="bilinear", antialias=True, align_corners=False)[0]


def stack_channels_last(views: Sequence[torch.Tensor]) -> torch.Tensor:
    """uint8 (B, C, S, S) in channels-last layout from (C, S, S) views: the layout the model runs in."""
    out = torch.empty(len(views), *views[0].shape, dtype=views[0].dtype, memory_format=torch.channels_last)
    for k, view in enumerate(views):
        out[k] = view
    return out


def ten_crops(image: torch.Tensor, crop: int) -> torch.Tensor:
    """uint8 (10, C, S, S): the four corner crops and the centre crop of ``image``, then their mirrors."""
    crops = [image[:, top : top + crop, left : left + crop] for top, left in ten_crop_boxes(image.shape[1], image.shape[2], crop)]
    return torch.stack(crops + [c.flip(-1) for c in crops])


def ten_crop_boxes(height: int, width: int, crop: int) -> list[tuple[int, int]]:
    """(top, left) of the four corner crops and the centre crop (torchvision's ``five_crop`` order)."""
    centre = (int(round((height - crop) / 2.0)), int(round((width - crop) / 2.0)))
    return [(0, 0), (0, width - crop), (height - crop, 0), (height - crop, width - crop), centre]


class PhotoBatches(Batches):
    """What the cached and the streaming photo loaders share: the global batch split over ranks, the
    epoch's order, the normalisation on the device, the evaluation views.

    Training reads ``augmentation.photo`` ("random-resized-crop" or "scale") and ``.flip`` (any
    value but "none" mirrors half the photos at random). With ``ten_crop`` (evaluation only)
    images are (B, 10, C, S, S): the views of each photo, for the caller to average.
    ``options``: the fields of ``LoaderOptions`` (the global batch split over ranks, and so on).
    """

    def __init__(self, data: Any, batch_size: int, *, ten_crop: bool = False, **options: Any) -> None:
        settings = LoaderOptions(**options)
        super().__init__(len(data), batch_size, settings)
        aug = settings.augmentation or Augmentation()
        if self.train and (aug.copies > 1 or aug.cutout):
            raise ResnetlabError("batch copies and cutout are options of the small-image loader: photo folders train without them")
        self.data, self.crop, self.labels = data, data.crop, data.labels
        self.augmentation, self.flip, self.ten_crop = aug.photo, aug.flip != "none", ten_crop and not self.train

    @property
    def image_size(self) -> tuple[int, int]:
        return (self.crop, self.crop)

    def order(self, epoch: int) -> torch.Tensor:
        """The photos' order in ``epoch``: a permutation seeded by (seed, epoch) when training."""
        n = len(self.data)
        if not self.train:
            return torch.arange(n)
        return torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))

    def normalise(self, pixels: torch.Tensor, colour: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 (B, C, S, S) or (B, V, C, S, S) -> float on the device, normalised (+ colour offsets)."""
        x = pixels.to(self.device, non_blocking=True).float()
        scale, shift = (self.scale, self.shift) if x.ndim == 4 else (self.scale[:, None], self.shift[:, None])
        x = x.mul_(scale).add_(shift)
        if colour is not None:
            x = x.add_((colour.to(self.device) / self.std.view(1, -1))[:, :, None, None])
        return x.contiguous(memory_format=self.memory_format) if x.ndim == 4 else x

    def with_ten_crop(self) -> PhotoBatches:
        """This evaluation loader, yielding each photo's ten crops (B, 10, C, S, S)."""
        twin = copy.copy(self)
        twin.ten_crop = True
        return twin


class PhotoLoader(PhotoBatches):
    """Batches of (normalised float images (B, C, S, S), labels) on ``device`` from a ``PhotoSet``
    held in memory (see ``PhotoBatches`` for the options)."""

    def batches(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield this rank's batches of ``epoch``, beginning at batch index ``start``."""
        order = self.order(epoch)
        for b in range(start, len(self)):
            rows = order[b * self.batch_size : (b + 1) * self.batch_size][self.rank :: self.world_size]
            if self.train:
                views = [self.view(int(i), epoch) for i in rows]
                pixels = stack_channels_last([cut_view(self.data.image(int(i)), v, self.crop) for i, v in zip(rows, views)])
                colour = torch.tensor([v.colour for v in views]) if self.augmentation == "scale" else None
            elif self.ten_crop:
                pixels, colour = torch.stack([ten_crops(self.data.image(int(i)), self.crop) for i in rows]), None
            else:
                pixels, colour = self.data.preview(rows), None
            yield self.normalise(pixels, colour), self.labels[rows].to(self.device)

    def view(self, index: int, epoch: int) -> PhotoView:
        """Photo ``index``'s training view in ``epoch`` (the streaming loader draws the very same)."""
        _, h, w = self.data.shapes[index].tolist()
        return draw_view(view_rng(self.seed, epoch, index), h, w, self.crop, self.augmentation, self.flip)
