"""EXIF orientation: one rule for reading a photo stored sideways, in training and ``predict`` alike.

A phone stores a portrait photo as landscape pixels plus an EXIF tag (0x0112) saying how to turn
them upright. torchvision's ImageFolder (PIL's loader) and ``decode_jpeg`` ignore the tag, so
weights trained with torchvision saw such photos as stored. ``ignore`` (the default) does the
same, so that those weights and ours see the same pixels; ``apply`` turns tagged photos upright
before anything else (``ImageOps.exif_transpose``; ``decode_jpeg(apply_exif_orientation=True)``,
which gives the same pixels). A run's rule is recorded in its config (``exif_orientation``) and
checkpoint, and ``predict`` reads files by it.
"""

from __future__ import annotations

from typing import Any

from PIL import Image, ImageOps

from resnetlab.errors import ResnetlabError

EXIF_ORIENTATIONS = ("ignore", "apply")
DEFAULT_EXIF_ORIENTATION = "ignore"  # torchvision's behaviour: pixels as stored
ORIENTATION_TAG = 0x0112  # 1: upright as stored; 2-8: mirrored and/or turned
EXIF_FORMATS = {"JPEG", "MPO", "WEBP", "TIFF"}  # their EXIF is read with the header; a PNG's may need its pixels


def check_exif_orientation(rule: Any) -> str:
    """``rule`` when it is one of ``EXIF_ORIENTATIONS``, else one message naming the choices."""
    if rule not in EXIF_ORIENTATIONS:
        raise ResnetlabError(f"exif_orientation must be one of {', '.join(EXIF_ORIENTATIONS)}, got {rule!r}")
    return rule


def orientation(image: Image.Image) -> int:
    """The image's EXIF orientation tag (1, upright as stored, when it has none or a bad one)."""
    if image.format not in EXIF_FORMATS and "exif" not in image.info:
        return 1
    try:
        tag = image.getexif().get(ORIENTATION_TAG, 1)
    except (OSError, ValueError, SyntaxError, TypeError):  # damaged EXIF: the pixels as stored
        return 1
    return tag if isinstance(tag, int) and 2 <= tag <= 8 else 1


def oriented(image: Image.Image, rule: str) -> Image.Image:
    """``image`` turned upright by its EXIF tag when ``rule`` is "apply"; itself otherwise."""
    if rule != "apply" or orientation(image) == 1:
        return image
    return ImageOps.exif_transpose(image)
