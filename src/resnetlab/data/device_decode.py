"""Streamed JPEGs decoded a batch at a time on the training device (nvjpeg on CUDA).

Why: decoding is most of a streamed photo's cost, and a GPU's JPEG decoder outruns any number of
spare CPU cores. Worker processes only read each file; a JPEG the device decodes (RGB or
grayscale, by its header) travels as its bytes, anything else (PNG, WebP, CMYK JPEG...) as the
photo decoded on the CPU exactly as the cache holds it. The training process decodes the batch's
JPEGs in one ``torchvision.io.decode_jpeg`` call; when that call fails, each file alone, and a file
the device still refuses is decoded by PIL as the cache decodes it, so an odd file costs time,
never the batch. A file nothing can read comes back as its ``UnreadableImage``, for the loader to name.

Each decoded JPEG is then resized to the evaluation resize on the device (torch's antialiased
bilinear, where the cache uses PIL's): with nvjpeg's own rounding, the pixels differ from the CPU
path's by a few levels (docs/photos.md), the boxes not at all.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg
from torchvision.transforms.v2 import functional as TF

from resnetlab.data.decode import UnreadableImage, decode_photo, open_image, reading
from resnetlab.data.orientation import DEFAULT_EXIF_ORIENTATION, orientation

DEVICE_MODES = ("RGB", "L")  # JPEG colour modes nvjpeg decodes to RGB; CMYK and YCCK JPEGs are left to PIL


def read_photo(path: str, shorter_side: int, exif_orientation: str = DEFAULT_EXIF_ORIENTATION) -> tuple[torch.Tensor, bool]:
    """In a worker: (the file's bytes, True) for a JPEG the device decodes, else (the photo as the
    cache holds it, uint8 (C, H, W), False); ``UnreadableImage`` for a file that is no readable image.
    A photo the EXIF rule turns upright is decoded here, as the cache decodes it."""
    with reading(path):
        with open_image(path) as image:  # the header alone, and the decompression-bomb check
            as_bytes = (image.format == "JPEG" and image.mode in DEVICE_MODES
                        and (exif_orientation != "apply" or orientation(image) == 1))
        if as_bytes:
            return torch.frombuffer(bytearray(Path(path).read_bytes()), dtype=torch.uint8), True
    return decode_photo(path, shorter_side, exif_orientation), False


@functools.cache
def decodes_lists() -> bool:
    """Whether this torchvision's ``decode_jpeg`` takes a list of JPEGs (0.20 and later). Asked once,
    of a tiny JPEG: a refused list costs its error message, which prints every tensor of the batch."""
    with warnings.catch_warnings():  # torchvision 0.29 deprecates its codecs in favour of torchcodec
        warnings.simplefilter("ignore", DeprecationWarning)
        tiny = encode_jpeg(torch.zeros(3, 8, 8, dtype=torch.uint8))
        try:
            decode_jpeg([tiny], mode=ImageReadMode.RGB)
        except (RuntimeError, TypeError, ValueError):
            return False
    return True


def decode_jpegs(data: Sequence[torch.Tensor], device: torch.device) -> list[torch.Tensor | None]:
    """uint8 (3, H, W) RGB on ``device`` for each JPEG's bytes: one batched call, else one call per
    file (None for a file the decoder refuses). torchvision 0.19 decodes one file a call: there
    every batch takes the per-file path."""
    if not data:
        return []
    with warnings.catch_warnings():  # torchvision 0.29 deprecates its decoders in favour of torchcodec
        warnings.simplefilter("ignore", DeprecationWarning)
        if decodes_lists():
            try:
                return list(decode_jpeg(list(data), mode=ImageReadMode.RGB, device=device))
            except (RuntimeError, ValueError):
                pass
        decoded: list[torch.Tensor | None] = []
        for raw in data:
            try:
                decoded.append(decode_jpeg(raw, mode=ImageReadMode.RGB, device=device))
            except (RuntimeError, ValueError):
                decoded.append(None)
        return decoded


def decoder_device(device: torch.device) -> torch.device:
    """Where JPEGs are decoded for a run on ``device``: the GPU itself, else the CPU."""
    return device if device.type == "cuda" else torch.device("cpu")


def decode_batch(payloads: Sequence[tuple[torch.Tensor, bool]], paths: Sequence[str], shorter_side: int,
                 device: torch.device, exif_orientation: str = DEFAULT_EXIF_ORIENTATION) -> list[torch.Tensor | UnreadableImage]:
    """Each photo at the evaluation resize, uint8 (C, H, W) on ``device``, from ``read_photo``'s
    payloads; the ``UnreadableImage`` of a file nothing could read."""
    jpegs = [k for k, (_, is_jpeg) in enumerate(payloads) if is_jpeg]
    decoded = dict(zip(jpegs, decode_jpegs([payloads[k][0] for k in jpegs], decoder_device(device))))
    photos: list[torch.Tensor | UnreadableImage] = []
    for k, (payload, is_jpeg) in enumerate(payloads):
        if not is_jpeg:
            photos.append(payload.to(device, non_blocking=True))
        elif decoded[k] is not None:
            photos.append(TF.resize(decoded[k], shorter_side, antialias=True).to(device, non_blocking=True))
        else:
            try:  # what the device refused, as the cache reads it
                photos.append(decode_photo(paths[k], shorter_side, exif_orientation).to(device))
            except UnreadableImage as exc:
                photos.append(exc)
    return photos


def photo_decoder(storage: str, device: torch.device, batched: bool) -> str:
    """How a run's photos are decoded, in words (``data info``)."""
    if storage != "stream":
        return "PIL, once, into the memory cache"
    if not batched:
        return "PIL in worker processes"
    where = "nvjpeg on the GPU" if device.type == "cuda" else "libjpeg on the CPU, in the training process"
    calls = "in batches" if decodes_lists() else "one per call (this torchvision decodes no batches)"
    return f"JPEGs {calls} by torchvision.io.decode_jpeg ({where}); other files by PIL in worker processes"
