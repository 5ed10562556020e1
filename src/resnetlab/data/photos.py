"""A photo folder's splits: decoded once into one memory cache (``PhotoSet``), or left on disk (``PhotoFiles``).

Why the evaluation resize: ``predict`` on a photo file does what torchvision's classification
references do (shorter side to ``S * 256 / 224`` with PIL's antialiased bilinear, then a centre
``S`` crop). The cache stores every photo after exactly that resize (aspect kept), so ``eval``
over the cache and ``predict`` over the files see the same pixels, and training's random crops
come from the same copy (as the fast ImageNet loaders do: a little less detail for the largest
crops than decoding the original every epoch, a decode saved per image and epoch). A split on
disk is decoded the same way (``decode.decode_photo``), a photo at a time, by the streaming loader.

The cache is ragged (photos keep their aspect): one flat uint8 buffer with each photo's offset
and (C, H, W) shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from resnetlab.data.decode import UnreadableImage, decode_photo, header_size
from resnetlab.data.orientation import DEFAULT_EXIF_ORIENTATION
from resnetlab.data.photo_crops import centre_crops
from resnetlab.data.stats import channel_stats
from resnetlab.errors import ResnetlabError, option

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's ImageNet weights expect these (RGB, [0, 1] units)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_CROP = 224  # the training crop S of a photo folder when --image-size is not given
STATS_SAMPLE = 512  # photos decoded to estimate a streamed folder's mean and std


def eval_resize(crop: int) -> int:
    """The shorter side a photo is resized to before the centre ``crop``: 256 for 224, as torchvision."""
    return round(crop * 256 / 224)


def photo_bytes(path: str, shorter_side: int) -> int | None:
    """Bytes this photo takes in the cache, from its header alone (None: unreadable)."""
    try:
        w, h = header_size(path)
    except UnreadableImage:
        return None
    short, long = min(w, h), max(w, h)
    return 3 * shorter_side * int(shorter_side * long / short)


@dataclass
class PhotoSet:
    """One split of photos held in memory at the evaluation resize.

    ``pixels`` uint8 (total,) holds every photo's (H, W, C) values one after another (channels
    last, as decoded, and the layout in which resizing a crop is fastest); ``offsets`` (N,) where
    each starts, ``shapes`` (N, 3) each one's (C, H, W); ``labels`` (N,). ``crop`` is the side S
    the model sees.
    """

    pixels: torch.Tensor
    offsets: torch.Tensor
    shapes: torch.Tensor
    labels: torch.Tensor
    crop: int

    def __post_init__(self) -> None:
        if self.pixels.dtype != torch.uint8 or self.pixels.ndim != 1:
            raise ValueError("pixels must be a flat uint8 tensor")
        if not (len(self.offsets) == len(self.shapes) == len(self.labels)):
            raise ValueError("offsets, shapes and labels must have one entry per photo")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def channels(self) -> int:
        return int(self.shapes[0, 0]) if len(self) else 3

    def image(self, index: int) -> torch.Tensor:
        """Photo ``index`` as a uint8 (C, H, W) view of the buffer (channels-last strides)."""
        c, h, w = self.shapes[index].tolist()
        start = int(self.offsets[index])
        return self.pixels[start : start + c * h * w].view(h, w, c).permute(2, 0, 1)

    def take(self, indices: torch.Tensor) -> PhotoSet:
        """The photos at ``indices`` (a validation split, a subset), copied into a buffer of their own."""
        images = [self.image(int(i)) for i in indices]
        return PhotoSet.from_images(images, self.labels[indices], self.crop)

    def preview(self, rows: torch.Tensor) -> torch.Tensor:
        """uint8 (n, C, S, S): the centre crops the model is evaluated on (figures, sample grids)."""
        return centre_crops([self.image(int(i)) for i in rows], self.crop, self.channels)

    def channel_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std in [0, 1] units over every cached pixel."""
        channels = self.channels
        if not len(self):
            return (0.0,) * channels, (1.0,) * channels
        return channel_stats(self.pixels.view(1, -1, channels, 1).permute(0, 2, 1, 3))  # every pixel as (1, C, total, 1)

    @classmethod
    def from_images(cls, images: Sequence[torch.Tensor], labels: torch.Tensor, crop: int) -> PhotoSet:
        """Pack uint8 (C, H, W) images of any sizes into one buffer (each stored as (H, W, C))."""
        sizes = torch.tensor([x.numel() for x in images], dtype=torch.int64)
        offsets = torch.cumsum(sizes, 0) - sizes
        pixels = torch.cat([x.permute(1, 2, 0).reshape(-1) for x in images]) if images else torch.empty(0, dtype=torch.uint8)
        shapes = torch.tensor([list(x.shape) for x in images], dtype=torch.int64).reshape(-1, 3)
        return cls(pixels, offsets, shapes, labels.to(torch.int64), crop)


def decode_photos(paths: Sequence[str], labels: Sequence[int], shorter_side: int,
                  exif_orientation: str = DEFAULT_EXIF_ORIENTATION) -> dict:
    """Decode and resize every photo: {"pixels", "offsets", "shapes", "labels", "skipped"} (tensors and
    strings only, so the cache loads with ``weights_only=True``)."""
    images, kept, skipped = [], [], []
    for path, label in zip(paths, labels):
        try:
            images.append(decode_photo(path, shorter_side, exif_orientation))  # (3, H, W)
            kept.append(label)
        except UnreadableImage as exc:
            skipped.append(exc.named)
    packed = PhotoSet.from_images(images, torch.tensor(kept, dtype=torch.int64), crop=0)
    return {"pixels": packed.pixels, "offsets": packed.offsets, "shapes": packed.shapes, "labels": packed.labels, "skipped": skipped}


def check_photo_crop(crop: int) -> int:
    """The training crop S of a photo folder (``--image-size``): a whole number of pixels >= 16."""
    if isinstance(crop, bool) or not isinstance(crop, int) or crop < 16:
        raise ResnetlabError(f"{option('image_size', metavar=repr(crop))} for a photo folder is the training crop in pixels: "
                             "use 16 or more (224 is usual)")
    return crop


@dataclass
class PhotoFiles:
    """One split of photos left on disk: paths, labels and the crop side S the model sees. What a
    folder becomes when its decoded cache would not fit in memory (or ``stream`` asks for it); the
    streaming loader decodes it in worker processes."""

    paths: list[str]
    labels: torch.Tensor
    crop: int
    exif_orientation: str = DEFAULT_EXIF_ORIENTATION  # how a photo tagged as stored sideways is read (data/orientation.py)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def channels(self) -> int:
        return 3

    def take(self, indices: torch.Tensor) -> PhotoFiles:
        return PhotoFiles([self.paths[int(i)] for i in indices], self.labels[indices], self.crop, self.exif_orientation)

    def decoded(self, index: int) -> torch.Tensor:
        """Photo ``index`` at the evaluation resize, uint8 (C, H, W); a bad file raises ``UnreadableImage``."""
        return decode_photo(self.paths[index], eval_resize(self.crop), self.exif_orientation)

    def preview(self, rows: torch.Tensor) -> torch.Tensor:
        """uint8 (n, C, S, S): the centre crops the model is evaluated on."""
        return centre_crops([self.decoded(int(i)) for i in rows], self.crop, self.channels)

    def channel_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Mean and std per channel of an evenly spaced sample of ``STATS_SAMPLE`` photos (decoding
        them all would cost an epoch); unreadable ones are left out of the sample."""
        step = max(1, len(self) // STATS_SAMPLE)
        planes = []
        for i in range(0, len(self), step):
            try:
                planes.append(self.decoded(i).permute(1, 2, 0).reshape(-1, 3))
            except UnreadableImage:
                continue
        if not planes:
            raise ResnetlabError(f"none of the sampled photos could be read (first: {self.paths[0]})")
        return channel_stats(torch.cat(planes).T[None, :, :, None])
