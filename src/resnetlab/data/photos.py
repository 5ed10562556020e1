"""Photographs of any size: decoded once, at the evaluation resize, into one memory cache.

Why the evaluation resize: ``predict`` on a photo file does what torchvision's classification
references do (shorter side to ``S * 256 / 224`` with PIL's antialiased bilinear, then a centre
``S`` crop). The cache stores every photo after exactly that resize (aspect kept), so ``eval``
over the cache and ``predict`` over the files see the same pixels, and training's random crops
come from the same copy (as the fast ImageNet loaders do: a little less detail for the largest
crops than decoding the original every epoch, a decode saved per image and epoch).

The cache is ragged (photos keep their aspect): one flat uint8 buffer with each photo's offset
and (C, H, W) shape.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from resnetlab.data.orientation import DEFAULT_EXIF_ORIENTATION, oriented
from resnetlab.errors import ResnetlabError

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's ImageNet weights expect these (RGB, [0, 1] units)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_CROP = 224  # the training crop S of a photo folder when --image-size is not given
SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
# Pillow refuses images over twice this many pixels and only warns between once and twice; a
# photo has far fewer (a 48-megapixel phone photo is half of it), so the warning is an error here.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
# What opening or decoding a file that is no readable image raises (named to the user, never a traceback)
UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning)


def eval_resize(crop: int) -> int:
    """The shorter side a photo is resized to before the centre ``crop``: 256 for 224, as torchvision."""
    return round(crop * 256 / 224)


def open_image(path: str) -> Image.Image:
    """``Image.open`` that refuses decompression bombs, JPEG and PNG alike, before decoding pixels."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image = Image.open(path)
    if image.width * image.height > MAX_PIXELS:
        image.close()
        raise Image.DecompressionBombError(
            f"{image.width}x{image.height} pixels is over the {MAX_PIXELS:,}-pixel limit for one image (a decompression bomb?)")
    return image


def eight_bit(image: Image.Image) -> Image.Image:
    """16-bit grayscale scaled to 8 bits (65535 -> 255, not clipped at 255 as ``convert`` does)."""
    if image.mode not in SIXTEEN_BIT_MODES:
        return image
    wide = np.asarray(image, dtype=np.int64)
    top = 65535 if image.mode != "I" or wide.max(initial=0) > 255 else 255
    return Image.fromarray(((wide.clip(0, top) * 255 + top // 2) // top).astype(np.uint8), mode="L")


def rgb_image(image: Image.Image) -> Image.Image:
    """Any Pillow image as 8-bit RGB: 16-bit grayscale scaled, palette and RGBA converted (alpha
    dropped), CMYK converted. Training's cache and ``predict`` both call it."""
    image = eight_bit(image)
    with warnings.catch_warnings():  # "Palette images with Transparency expressed in bytes should be converted to RGBA"
        warnings.simplefilter("ignore", UserWarning)
        return image.convert("RGB")


def resize_photo(image: Image.Image, shorter_side: int) -> Image.Image:
    """Shorter side to ``shorter_side`` with torchvision's ``Resize(n)`` on a PIL image (antialiased
    bilinear, the longer side truncated as torchvision computes it)."""
    return TF.resize(image, shorter_side)


def decode_photo(path: str, shorter_side: int, exif_orientation: str = DEFAULT_EXIF_ORIENTATION) -> np.ndarray | str:
    """(H, W, 3) uint8 resized for the cache, or the error text for a file that is no readable image.
    ``exif_orientation``: "apply" turns a photo tagged as stored sideways upright (``data/orientation.py``)."""
    try:
        with open_image(path) as image:
            return np.asarray(resize_photo(rgb_image(oriented(image, exif_orientation)), shorter_side))
    except UNREADABLE as exc:
        return f"{type(exc).__name__}: {exc}"


def photo_bytes(path: str, shorter_side: int) -> int | None:
    """Bytes this photo takes in the cache, from its header alone (None: unreadable)."""
    try:
        with open_image(path) as image:
            w, h = image.size
    except UNREADABLE:
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
        if len(rows) == 0:
            return torch.empty(0, self.channels, self.crop, self.crop, dtype=torch.uint8)
        return torch.stack([TF.center_crop(self.image(int(i)), [self.crop, self.crop]) for i in rows])

    def channel_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std in [0, 1] units over every cached pixel."""
        from resnetlab.data.stats import channel_stats  # one formula for both kinds of split

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
        array = decode_photo(path, shorter_side, exif_orientation)
        if isinstance(array, str):
            skipped.append(f"{path} ({array})")
            continue
        images.append(torch.from_numpy(array.copy()).permute(2, 0, 1))  # (3, H, W)
        kept.append(label)
    packed = PhotoSet.from_images(images, torch.tensor(kept, dtype=torch.int64), crop=0)
    return {"pixels": packed.pixels, "offsets": packed.offsets, "shapes": packed.shapes, "labels": packed.labels, "skipped": skipped}


def check_photo_crop(crop: int) -> int:
    """The training crop S of a photo folder (``--image-size``): a whole number of pixels >= 16."""
    if isinstance(crop, bool) or not isinstance(crop, int) or crop < 16:
        raise ResnetlabError(f"--image-size {crop!r} for a photo folder is the training crop in pixels: use 16 or more (224 is usual)")
    return crop
