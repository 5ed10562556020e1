"""Photo-like folders generated on the spot: JPEG, PNG and WebP files of mixed sizes and modes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# (width, height, mode, format): landscape, portrait and square, every mode a photo folder meets
PHOTO_KINDS = [
    (120, 90, "RGB", "JPEG"), (72, 100, "RGB", "JPEG"), (96, 96, "L", "PNG"), (110, 80, "P", "PNG"),
    (80, 112, "RGBA", "PNG"), (100, 75, "CMYK", "JPEG"), (90, 120, "RGB", "WEBP"), (130, 70, "RGB", "PNG"),
]
SUFFIX = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


@pytest.fixture(autouse=True)
def data_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("RESNETLAB_DATA", str(cache))
    return cache


def photo_pixels(width: int, height: int, seed: int, tint: int) -> np.ndarray:
    """(H, W, 3) uint8: smooth colour gradients plus texture, so that resizing and JPEG matter."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.stack([x / width * 200, y / height * 200, (x + y) / (width + height) * 120 + tint], -1)
    waves = 30 * np.sin(x[..., None] / (3 + seed % 5) + np.arange(3)) * np.cos(y[..., None] / 4)
    return np.clip(base + waves + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def write_photo(path: Path, width: int, height: int, mode: str, fmt: str, seed: int, tint: int = 0) -> Path:
    image = Image.fromarray(photo_pixels(width, height, seed, tint), "RGB")
    if mode == "P":
        image = image.quantize(64)
    elif mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, fmt, **({"quality": 90} if fmt in ("JPEG", "WEBP") else {}))
    return path


def make_photo_folder(root: Path, classes=("ant", "bee"), per_class: int = 8, splits=("train", "val")) -> Path:
    """A folder of every kind of photo in ``PHOTO_KINDS``, in turn, per class and split."""
    seed = 0
    for split in splits:
        for c, name in enumerate(classes):
            for k in range(per_class):
                width, height, mode, fmt = PHOTO_KINDS[(k + c) % len(PHOTO_KINDS)]
                write_photo(root / split / name / f"{k:03d}.{SUFFIX[fmt]}", width, height, mode, fmt, seed, tint=100 * c)
                seed += 1
    return root


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    return make_photo_folder(tmp_path / "photos")
