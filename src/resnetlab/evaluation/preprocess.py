"""Turning image files into the tensors a checkpoint's model expects.

Everything comes from the checkpoint: the input size (resize the short side, then centre-crop),
the channel count (grayscale, palette and RGBA images are converted) and the normalisation of
its training set. Decoding errors become a ``ResnetlabError`` naming the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.transforms import v2

from resnetlab.errors import ResnetlabError


def find_images(paths: Iterable[str | Path]) -> list[Path]:
    """Expand each path: a file is taken as given, a folder contributes its images (recursively, sorted)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            images = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS)
            if not images:
                raise ResnetlabError(f"folder {path} holds no images ({', '.join(IMG_EXTENSIONS)}): pass a folder with images")
            found.extend(images)
        else:
            raise ResnetlabError(f"{path} does not exist: pass an image file or a folder of images")
    if not found:
        raise ResnetlabError("no images given: pass at least one image file or folder")
    return found


def read_image(path: str | Path) -> torch.Tensor:
    """Decode any image Pillow reads into uint8 RGB (3, H, W); raise our error for anything else."""
    try:
        with Image.open(path) as image:
            image.load()
            return rgb_pixels(image)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ResnetlabError(f"{path} is not an image Pillow can read: {reason}") from None


def rgb_pixels(image: Image.Image) -> torch.Tensor:
    """A decoded PIL image as uint8 RGB (3, H, W): palette, grayscale, 16-bit and RGBA (alpha
    dropped) are converted, so every source reaches ``build_transform`` in one form."""
    return v2.functional.pil_to_tensor(image.convert("RGB"))


def build_transform(input_size: Sequence[int], mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    """uint8 RGB (3, h, w) of any size -> float (C, H, W) normalised as the checkpoint's training data."""
    channels, height, width = input_size
    steps: list[v2.Transform] = []
    if channels == 1:
        steps.append(v2.Grayscale(num_output_channels=1))
    elif channels != 3:
        raise ResnetlabError(f"checkpoint expects {channels}-channel images: only 1 (grayscale) and 3 (RGB) can be read from files")
    steps += [
        # Resize the short side to the crop's short side, then crop the centre: the usual eval transform.
        v2.Resize(min(height, width), antialias=True),
        v2.CenterCrop((height, width)),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(list(mean), list(std)),
    ]
    return v2.Compose(steps)


def load_batch(paths: Sequence[Path], transform: v2.Compose) -> torch.Tensor:
    """Read and preprocess ``paths`` into one float batch (N, C, H, W)."""
    return torch.stack([transform(read_image(p)) for p in paths])


def checkpoint_transform(ckpt: dict) -> v2.Compose:
    """The eval transform a checkpoint implies (its ``input_size`` and ``normalization``)."""
    try:
        input_size = ckpt["input_size"]
        mean, std = ckpt["normalization"]["mean"], ckpt["normalization"]["std"]
    except (KeyError, TypeError):
        raise ResnetlabError("checkpoint has no input_size/normalization entries: it was not written by resnetlab train") from None
    return build_transform(input_size, mean, std)
