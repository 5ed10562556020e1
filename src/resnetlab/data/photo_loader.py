"""Training and evaluation batches from cached photos (``PhotoSet``), with the same contract as
``TensorLoader``: ``len``, ``batches(epoch, start)``, the global batch split over ranks.

Training: torchvision's reference augmentation (``RandomResizedCrop(S)``, scale 0.08-1, ratio
3/4-4/3, then a horizontal flip) or the paper's (Sec. 3.4: shorter side random in [256, 480]
scaled to S, a random S crop, a flip, PCA colour noise). The order of an epoch comes from
(seed, epoch); every photo's crop, flip and colour noise from a generator seeded by (seed,
epoch, index) alone, so an interrupted run resumes bit-identically and the streaming loader,
which decodes photos in worker processes, draws the very same views. Evaluation: the centre S crop of the cached photo (which
was resized as ``predict`` resizes), or the paper's 10 crops (corners and centre, and mirrors).

``photo_views`` says where the views are cut: "per-photo" on the CPU, one photo at a time with
torch's uint8 resize (the CPU's fastest), or "batched" on the training device, the whole batch in
one resize (``batched_views``; a GPU would otherwise wait on the CPU); "auto" is batched on CUDA.
The boxes are the same either way; the pixels differ by the resize's rounding (docs/photos.md).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import torch

from resnetlab.config_values import generator_seed
from resnetlab.data.batched_views import cut_views
from resnetlab.data.loader import Augmentation, Batches, LoaderOptions
from resnetlab.data.photo_views import PhotoView, cut_view, draw_view, stack_channels_last, ten_crops, view_rng
from resnetlab.data.photos import PhotoSet
from resnetlab.errors import ResnetlabError

PHOTO_VIEWS = ("auto", "per-photo", "batched")
DEVICE_CACHE_SHARE = 0.25  # of a GPU's free memory the training photos' cache may take there (the rest: the model's)


def batched_on(photo_views: str, device: torch.device) -> bool:
    """Whether views are cut in batches on ``device``: "auto" means on CUDA only, since on a CPU
    one photo at a time is the faster way (measured in docs/photos.md)."""
    if photo_views not in PHOTO_VIEWS:
        raise ResnetlabError(f"photo_views must be one of {', '.join(PHOTO_VIEWS)}, got {photo_views!r}")
    return photo_views == "batched" or (photo_views == "auto" and device.type == "cuda")


def fits_on_device(nbytes: int, device: torch.device) -> bool:
    """Whether ``nbytes`` of cached photos may live on ``device``: a GPU with ``DEVICE_CACHE_SHARE``
    of its free memory to spare. Elsewhere the cache stays in host memory (a CPU's is the same)."""
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= DEVICE_CACHE_SHARE * free


class PhotoBatches(Batches):
    """What the cached and the streaming photo loaders share: the global batch split over ranks, the
    epoch's order, the normalisation on the device, the evaluation views.

    Training reads ``augmentation.photo`` ("random-resized-crop" or "scale") and ``.flip`` (any
    value but "none" mirrors half the photos at random). With ``ten_crop`` (evaluation only)
    images are (B, 10, C, S, S): the views of each photo, for the caller to average.
    ``photo_views``: "per-photo", "batched" or "auto" (see the module's docstring).
    ``options``: the fields of ``LoaderOptions`` (the global batch split over ranks, and so on).
    """

    def __init__(self, data: Any, batch_size: int, *, ten_crop: bool = False, photo_views: str = "auto", **options: Any) -> None:
        settings = LoaderOptions(**options)
        super().__init__(len(data), batch_size, settings)
        aug = settings.augmentation or Augmentation()
        if self.train and (aug.copies > 1 or aug.cutout):
            raise ResnetlabError("batch copies and cutout are options of the small-image loader: photo folders train without them")
        self.data, self.crop, self.labels = data, data.crop, data.labels
        self.augmentation, self.flip, self.ten_crop = aug.photo, aug.flip != "none", ten_crop and not self.train
        self.batched = batched_on(photo_views, self.device)

    @property
    def image_size(self) -> tuple[int, int]:
        return (self.crop, self.crop)

    def order(self, epoch: int) -> torch.Tensor:
        """The photos' order in ``epoch``: a permutation seeded by (seed, epoch) when training."""
        n = len(self.data)
        if not self.train:
            return torch.arange(n)
        return torch.randperm(n, generator=torch.Generator().manual_seed(generator_seed(self.seed * 100_003 + epoch)))

    def normalise(self, pixels: torch.Tensor, colour: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 (B, C, S, S) or (B, V, C, S, S) -> float on the device, normalised (+ colour offsets)."""
        x = pixels.to(self.device, non_blocking=True).float()
        scale, shift = (self.scale, self.shift) if x.ndim == 4 else (self.scale[:, None], self.shift[:, None])
        x = x.mul_(scale).add_(shift)
        if colour is not None:
            x = x.add_((colour.to(self.device) / self.std.view(1, -1))[:, :, None, None])
        return x.contiguous(memory_format=self.memory_format) if x.ndim == 4 else x

    def draw(self, index: int, epoch: int, height: int, width: int) -> PhotoView:
        """Photo ``index``'s training view in ``epoch``, for a photo of ``height`` x ``width`` at the evaluation resize."""
        return draw_view(view_rng(self.seed, epoch, index), height, width, self.crop, self.augmentation, self.flip)

    def with_ten_crop(self) -> PhotoBatches:
        """This evaluation loader, yielding each photo's ten crops (B, 10, C, S, S)."""
        twin = copy.copy(self)
        twin.ten_crop = True
        return twin


class PhotoLoader(PhotoBatches):
    """Batches of (normalised float images (B, C, S, S), labels) on ``device`` from a ``PhotoSet``
    held in memory (see ``PhotoBatches`` for the options). Views cut in batches read the cache on
    the training device where it fits (``fits_on_device``), else a batch's boxes travel there."""

    def __init__(self, data: PhotoSet, batch_size: int, **options: Any) -> None:
        super().__init__(data, batch_size, **options)
        self._source: PhotoSet | None = None  # the cache where batched views read it, placed at the first batch

    def batches(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield this rank's batches of ``epoch``, beginning at batch index ``start``."""
        order = self.order(epoch)
        for b in range(start, len(self)):
            rows = order[b * self.batch_size : (b + 1) * self.batch_size][self.rank :: self.world_size]
            if self.train:
                views = [self.view(int(i), epoch) for i in rows]
                pixels = self.cut(rows.tolist(), views)
                colour = torch.tensor([v.colour for v in views]) if self.augmentation == "scale" else None
            elif self.ten_crop:
                pixels, colour = torch.stack([ten_crops(self.data.image(int(i)), self.crop) for i in rows]), None
            else:
                pixels, colour = self.data.preview(rows), None
            yield self.normalise(pixels, colour), self.labels[rows].to(self.device)

    def view(self, index: int, epoch: int) -> PhotoView:
        """Photo ``index``'s training view in ``epoch`` (the streaming loader draws the very same)."""
        _, h, w = self.data.shapes[index].tolist()
        return self.draw(index, epoch, h, w)

    def cut(self, rows: list[int], views: list[PhotoView]) -> torch.Tensor:
        """uint8 (B, C, S, S) channels-last: the photos' views, one by one on the CPU or batched on the device."""
        if not self.batched:
            return stack_channels_last([cut_view(self.data.image(i), v, self.crop) for i, v in zip(rows, views)])
        if self._source is None:
            on_device = fits_on_device(self.data.pixels.numel(), self.device)
            self._source = PhotoSet(self.data.pixels.to(self.device), self.data.offsets, self.data.shapes, self.data.labels,
                                    self.crop) if on_device else self.data
        return cut_views([self._source.image(i) for i in rows], views, self.crop, self.device)
