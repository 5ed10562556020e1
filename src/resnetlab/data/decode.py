"""Reading image files: every decoder of the package, and the one error for a file that is no image.

The folder cache (small images and photos), the streaming loader's workers, the device decoder's
fallback and ``predict``/``eval`` all read files here. Whatever Pillow or libjpeg raise for a file
that is no readable image (a truncated JPEG, a text file named ``.png``, a decompression bomb)
becomes ``UnreadableImage`` in ``reading``, once: it names the file and the reason, so callers
name it to the user or skip it, and never handle Pillow's exceptions themselves.

A photo is decoded one way wherever it is read (``decode_photo``): 16-bit grayscale scaled to 8 bits,
any mode converted to RGB, turned upright by its EXIF tag when asked (``data/orientation.py``),
then its shorter side resized with torchvision's ``Resize`` on the PIL image. Small images
(``decode_small_image``) keep grayscale as one channel and are resized whole, as CIFAR's path needs.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms.v2 import functional as TF

from resnetlab.data.orientation import DEFAULT_EXIF_ORIENTATION, orientation, oriented
from resnetlab.errors import ResnetlabError

SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
GRAYSCALE_MODES = {"1", "L", "LA", "I", "I;16", "F"}
JPEG_MAGIC = b"\xff\xd8\xff"
SURVEY_SAMPLE = 2000  # photo headers read to count tagged photos (evenly spaced, as pipeline detection does)
# Pillow refuses images over twice this many pixels and only warns between once and twice; a
# photo has far fewer (a 48-megapixel phone photo is half of it), so the warning is an error here.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
# What opening or decoding a file that is no readable image raises: the one list of it
_NOT_AN_IMAGE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning)


class UnreadableImage(ResnetlabError):
    """A file that is no readable image. ``named``: "path (reason)", as lists of skipped files show it."""

    def __init__(self, path: str | Path, error: BaseException) -> None:
        self.path, self.error = str(path), error
        self.reason = f"{type(error).__name__}: {error}"
        self.named = f"{path} ({self.reason})"
        super().__init__(f"cannot read image {self.named}: fix or remove it")


@contextmanager
def reading(path: str | Path) -> Iterator[None]:
    """Turn what reading ``path`` raises for a file that is no image into ``UnreadableImage``."""
    try:
        yield
    except _NOT_AN_IMAGE as exc:
        raise UnreadableImage(path, exc) from None


def open_image(path: str | Path) -> Image.Image:
    """``Image.open`` that refuses decompression bombs, JPEG and PNG alike, before decoding pixels
    (Pillow's exceptions: call it inside ``reading``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image = Image.open(path)
    if image.width * image.height > MAX_PIXELS:
        image.close()
        raise Image.DecompressionBombError(
            f"{image.width}x{image.height} pixels is over the {MAX_PIXELS:,}-pixel limit for one image (a decompression bomb?)")
    return image


def header_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the file's header alone, microseconds a file."""
    with reading(path), open_image(path) as image:
        return image.size


def eight_bit(image: Image.Image) -> Image.Image:
    """16-bit grayscale scaled to 8 bits (65535 -> 255, not clipped at 255 as ``convert`` does)."""
    if image.mode not in SIXTEEN_BIT_MODES:
        return image
    wide = np.asarray(image, dtype=np.int64)
    top = 65535 if image.mode != "I" or wide.max(initial=0) > 255 else 255
    return Image.fromarray(((wide.clip(0, top) * 255 + top // 2) // top).astype(np.uint8), mode="L")


def rgb_image(image: Image.Image) -> Image.Image:
    """Any Pillow image as 8-bit RGB: 16-bit grayscale scaled, palette and RGBA converted (alpha
    dropped), CMYK converted."""
    image = eight_bit(image)
    with warnings.catch_warnings():  # "Palette images with Transparency expressed in bytes should be converted to RGBA"
        warnings.simplefilter("ignore", UserWarning)
        return image.convert("RGB")


def open_rgb(path: str | Path, exif_orientation: str = DEFAULT_EXIF_ORIENTATION) -> Image.Image:
    """The file as an 8-bit RGB PIL image, upright when ``exif_orientation`` is "apply": what every
    photo's pixels start from, in training's cache, the streaming workers and ``predict``."""
    with reading(path), open_image(path) as image:
        image.load()
        return rgb_image(oriented(image, exif_orientation))


def resize_photo(image: Image.Image, shorter_side: int) -> Image.Image:
    """Shorter side to ``shorter_side`` with torchvision's ``Resize(n)`` on a PIL image (antialiased
    bilinear, the longer side truncated as torchvision computes it)."""
    return TF.resize(image, shorter_side)


def decode_photo(path: str | Path, shorter_side: int, exif_orientation: str = DEFAULT_EXIF_ORIENTATION) -> torch.Tensor:
    """uint8 (3, H, W) with channels-last strides (as decoded): the photo resized to ``shorter_side``."""
    array = np.asarray(resize_photo(open_rgb(path, exif_orientation), shorter_side))  # (H, W, 3)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def decode_small_image(path: str | Path, image_size: tuple[int, int] | None,
                       exif_orientation: str = DEFAULT_EXIF_ORIENTATION) -> np.ndarray:
    """(H, W, C) uint8, C = 1 for grayscale, 3 otherwise, resized to ``image_size`` (H, W) if given."""
    with reading(path):
        open_image(path).close()  # the header alone: a decompression bomb stops here, JPEG or PNG
        array = _decode_jpeg(path, image_size, exif_orientation)
        if array is None:
            array = _decode_pil(path, image_size, exif_orientation)
    return array[:, :, None] if array.ndim == 2 else array


def _decode_jpeg(path: str | Path, image_size: tuple[int, int] | None,
                 exif_orientation: str = DEFAULT_EXIF_ORIENTATION) -> np.ndarray | None:
    """torchvision's libjpeg-turbo decoder, about 5x faster than PIL on small JPEGs (pixel-identical).

    None for anything but a grayscale or RGB JPEG (PNG palettes, CMYK...), which PIL handles.
    """
    with open(path, "rb") as f:
        raw = f.read()
    if not raw.startswith(JPEG_MAGIC):
        return None
    try:
        with warnings.catch_warnings():  # torchvision 0.29 deprecates its decoders in favour of torchcodec
            warnings.simplefilter("ignore", DeprecationWarning)
            x = decode_jpeg(torch.frombuffer(bytearray(raw), dtype=torch.uint8), mode=ImageReadMode.UNCHANGED,
                            apply_exif_orientation=exif_orientation == "apply")  # (C, H, W)
    except RuntimeError:
        return None  # let PIL decode it, or name what is wrong with it
    if x.shape[0] not in (1, 3):
        return None
    if image_size and tuple(x.shape[1:]) != image_size:
        x = TF.resize(x, list(image_size), antialias=True)
    return x.permute(1, 2, 0).numpy()


def _decode_pil(path: str | Path, image_size: tuple[int, int] | None, exif_orientation: str = DEFAULT_EXIF_ORIENTATION) -> np.ndarray:
    with open_image(path) as img:
        img = eight_bit(oriented(img, exif_orientation))
        img = img.convert("L" if img.mode in GRAYSCALE_MODES else "RGB")
        if image_size and img.size != (image_size[1], image_size[0]):
            img = img.resize((image_size[1], image_size[0]), Image.Resampling.BILINEAR)
        return np.asarray(img)


def survey_orientation(paths: Sequence[str], rule: str) -> dict[str, Any]:
    """How many photos carry an EXIF orientation tag (from at most ``SURVEY_SAMPLE`` headers, evenly
    spaced): ``{"rule", "tagged", "checked", "images", "examples"}`` for ``data info``."""
    step = max(1, len(paths) // SURVEY_SAMPLE)
    checked, tagged = 0, []
    for path in paths[::step]:
        try:
            with reading(path), open_image(path) as image:
                turned = orientation(image) != 1
        except UnreadableImage:
            continue  # named when the photos are decoded
        checked += 1
        if turned:
            tagged.append(path)
    return {"rule": rule, "tagged": len(tagged), "checked": checked, "images": len(paths), "examples": tagged[:3]}
