"""What a photo becomes in a batch, defined once, and what the cached and streaming loaders share.

In the spirit of torchvision's ``ClassificationPresetTrain`` / ``ClassificationPresetEval``: a
``PhotoPipeline`` turns photos at the evaluation resize (uint8 (C, H, W), as ``decode.decode_photo``
gives them) into a batch's pixels. Training: torchvision's reference augmentation
(``RandomResizedCrop(S)``, scale 0.08-1, ratio 3/4-4/3, then a horizontal flip) or the paper's
(Sec. 3.4: shorter side random in [256, 480] scaled to S, a random S crop, a flip, PCA colour
noise), every photo's crop drawn from (seed, epoch, index) alone. Evaluation: the centre S crop,
or the paper's 10 crops (corners and centre, and mirrors).

Cached, streamed or on the device is where these steps run, not another copy of them: the cached
loader runs them on its memory cache, the streaming loader's workers on each decoded file (a batch
of one), and with crops cut in batches the training process on the batch's photos on the device.
``photo_views`` says where training crops are cut: "per-photo" on the CPU, one photo at a time
with torch's uint8 resize (the CPU's fastest), or "batched" on the training device, the whole
batch in one resize (``batched_crops``; a GPU would otherwise wait on the CPU); "auto" is batched
on CUDA. The boxes are the same either way; the pixels differ by the resize's rounding (docs/photos.md).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from resnetlab.data.batched_crops import cut_crops
from resnetlab.data.loader import Augmentation, Batches, LoaderOptions
from resnetlab.data.photo_crops import PhotoCrop, centre_crops, crop_rng, cut_crop, draw_crop, stack_channels_last, ten_crops
from resnetlab.errors import ResnetlabError

PHOTO_VIEWS = ("auto", "per-photo", "batched")  # the choices of photo_views: where training crops are cut


def batched_on(photo_views: str, device: torch.device) -> bool:
    """Whether training crops are cut in batches on ``device``: "auto" means on CUDA only, since on
    a CPU one photo at a time is the faster way (measured in docs/photos.md)."""
    if photo_views not in PHOTO_VIEWS:
        raise ResnetlabError(f"photo_views must be one of {', '.join(PHOTO_VIEWS)}, got {photo_views!r}")
    return photo_views == "batched" or (photo_views == "auto" and device.type == "cuda")


@dataclass(frozen=True)
class PhotoPipeline:
    """The steps from photos at the evaluation resize to a batch's uint8 pixels (small and
    picklable: the streaming loader's worker processes hold one)."""

    crop: int  # the side S the model sees
    train: bool = False
    augmentation: str = "random-resized-crop"  # training: "random-resized-crop" or the paper's "scale"
    flip: bool = True  # training: mirror half the photos at random
    seed: int = 0
    ten_crop: bool = False  # evaluation: each photo's ten crops instead of its centre crop

    def draw(self, index: int, epoch: int, height: int, width: int) -> PhotoCrop:
        """Photo ``index``'s training crop in ``epoch``, for a photo of ``height`` x ``width``."""
        return draw_crop(crop_rng(self.seed, epoch, index), height, width, self.crop, self.augmentation, self.flip)

    def batch(self, indices: Sequence[int], images: Sequence[torch.Tensor], epoch: int,
              device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The pixels of photos ``indices`` (``images``: each uint8 (C, H, W)) and the RGB offsets
        (B, 3) of the paper's colour noise (None without it).

        Training: uint8 (B, C, S, S) channels-last, cut photo by photo where the images are, or
        with ``device`` in one batched resize there. Evaluation: the centre crops (B, C, S, S), or
        with ``ten_crop`` (B, 10, C, S, S), for the caller to average."""
        if self.train:
            crops = [self.draw(i, epoch, image.shape[1], image.shape[2]) for i, image in zip(indices, images)]
            if device is None:
                pixels = stack_channels_last([cut_crop(image, c, self.crop) for image, c in zip(images, crops)])
            else:
                pixels = cut_crops(images, crops, self.crop, device)
            return pixels, torch.tensor([c.colour for c in crops]) if self.augmentation == "scale" else None
        if self.ten_crop:
            return torch.stack([ten_crops(image, self.crop) for image in images]), None
        return centre_crops(images, self.crop), None


class PhotoBatches(Batches):
    """What the cached and the streaming photo loaders share: the global batch split over ranks, the
    epoch's order, the ``PhotoPipeline``, the normalisation on the device.

    Training reads ``augmentation.photo`` ("random-resized-crop" or "scale") and ``.flip`` (any
    value but "none" mirrors half the photos at random). With ``ten_crop`` (evaluation only)
    images are (B, 10, C, S, S): the crops of each photo, for the caller to average.
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
        self.pipeline = PhotoPipeline(data.crop, train=self.train, augmentation=aug.photo, flip=aug.flip != "none", seed=self.seed,
                                      ten_crop=ten_crop and not self.train)
        self.batched = batched_on(photo_views, self.device)

    @property
    def image_size(self) -> tuple[int, int]:
        return (self.crop, self.crop)

    def order(self, epoch: int) -> torch.Tensor:
        """The photos' order in ``epoch``: a permutation seeded by (seed, epoch) when training."""
        n = len(self.data)
        if not self.train:
            return torch.arange(n)
        return torch.randperm(n, generator=self.epoch_generator(epoch))

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
        twin.pipeline = replace(self.pipeline, ten_crop=True)
        return twin
