"""Image folders in torchvision's ImageFolder layout, decoded once into a uint8 cache.

``DIR/train/<class>/*`` and ``DIR/test/<class>/*`` (or ``DIR/val/``). The first load decodes
every image (JPEGs with torchvision's libjpeg-turbo decoder, the rest with PIL; one process, as
a pool of two gained nothing measurable on two shared cores) and saves the split as one uint8 tensor keyed by
the folder's contents (relative paths, sizes, modification times) and the resize option; loading
the same folder again reads that file instead of 60,000 JPEGs. Any change to the folder changes
the key, so a stale cache is never used.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms.v2 import functional as TF

from resnetlab.data.class_indices import write_class_indices
from resnetlab.data.download import cache_root
from resnetlab.data.sources import LoadOptions, RawDataset, register_source
from resnetlab.data.types import ImageSet
from resnetlab.errors import ResnetlabError

log = logging.getLogger(__name__)
CACHE_VERSION = 1  # bump when the cache layout changes
GRAYSCALE_MODES = {"1", "L", "LA", "I", "I;16", "F"}
JPEG_MAGIC = b"\xff\xd8\xff"


def split_dirs(root: Path) -> tuple[Path, Path]:
    """``root/train`` and ``root/test`` (or ``root/val``), or a message saying what is missing."""
    if not root.is_dir():
        raise ResnetlabError(f"image folder {root} does not exist: pass --data-dir DIR with DIR/train/<class>/ and DIR/test/<class>/")
    train = root / "train"
    test = next((root / name for name in ("test", "val") if (root / name).is_dir()), None)
    if not train.is_dir() or test is None:
        missing = "train/" if not train.is_dir() else "test/ (or val/)"
        raise ResnetlabError(f"image folder {root} has no {missing}: expected DIR/train/<class>/* and DIR/test/<class>/*")
    return train, test


def scan_split(split_dir: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """Sorted class names and (path, class index) per image; empty classes are an error."""
    try:
        classes, class_to_idx = find_classes(str(split_dir))
    except FileNotFoundError:
        raise ResnetlabError(f"{split_dir} has no class folders: put images in {split_dir}/<class>/") from None
    samples = make_dataset(str(split_dir), class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=True)
    counts = np.bincount([label for _, label in samples], minlength=len(classes))
    empty = [classes[i] for i in np.flatnonzero(counts == 0)]
    if empty:
        raise ResnetlabError(
            f"class folder(s) {', '.join(str(split_dir / c) for c in empty)} contain no images "
            f"({', '.join(IMG_EXTENSIONS)}): add images or remove the folder"
        )
    return classes, samples


def content_key(split_dir: Path, samples: list[tuple[str, int]], image_size: tuple[int, int] | None) -> str:
    """A hash of every file's relative path, size and mtime, plus the options that change pixels."""
    digest = hashlib.sha256(f"v{CACHE_VERSION} size={image_size}\n".encode())
    for path, label in samples:
        st = os.stat(path)
        digest.update(f"{os.path.relpath(path, split_dir)}\0{label}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def decode_image(path: str, image_size: tuple[int, int] | None) -> np.ndarray | str:
    """(H, W, C) uint8 with C = 1 for grayscale, 3 otherwise; or the error text for a bad file."""
    try:
        array = _decode_jpeg(path, image_size)
        if array is None:
            array = _decode_pil(path, image_size)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return array[:, :, None] if array.ndim == 2 else array


def _decode_jpeg(path: str, image_size: tuple[int, int] | None) -> np.ndarray | None:
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
            x = decode_jpeg(torch.frombuffer(bytearray(raw), dtype=torch.uint8), mode=ImageReadMode.UNCHANGED)  # (C, H, W)
    except RuntimeError:
        return None  # let PIL decode it, or name what is wrong with it
    if x.shape[0] not in (1, 3):
        return None
    if image_size and tuple(x.shape[1:]) != image_size:
        x = TF.resize(x, list(image_size), antialias=True)
    return x.permute(1, 2, 0).numpy()


def _decode_pil(path: str, image_size: tuple[int, int] | None) -> np.ndarray:
    with Image.open(path) as img:
        img = img.convert("L" if img.mode in GRAYSCALE_MODES else "RGB")
        if image_size and img.size != (image_size[1], image_size[0]):
            img = img.resize((image_size[1], image_size[0]), Image.Resampling.BILINEAR)
        return np.asarray(img)


def build_imageset(split_dir: Path, samples: list[tuple[str, int]], image_size: tuple[int, int] | None) -> dict:
    """Decode every image of one split into {"images", "labels", "skipped"} (bad files listed, not kept)."""
    decoded = [decode_image(path, image_size) for path, _ in samples]
    good = [(array, label) for array, (_, label) in zip(decoded, samples) if not isinstance(array, str)]
    skipped = [f"{path} ({array})" for array, (path, _) in zip(decoded, samples) if isinstance(array, str)]
    if not good:
        raise ResnetlabError(f"no readable images in {split_dir}: {skipped[0] if skipped else ''}")
    shapes = {a.shape[:2] for a, _ in good}
    if len(shapes) > 1:
        readable = [(path, a.shape) for a, (path, _) in zip(decoded, samples) if not isinstance(a, str)]
        (first, (h1, w1, _)), (odd, (h2, w2, _)) = readable[0], next(r for r in readable if r[1][:2] != readable[0][1][:2])
        raise ResnetlabError(  # sizes as width x height, as image viewers give them
            f"images in {split_dir} differ in size ({first} is {w1}x{h1}, {odd} is {w2}x{h2}): "
            "pass --image-size N to resize them all to NxN"
        )
    channels = max(a.shape[2] for a, _ in good)  # any colour image makes the whole split RGB
    images = np.stack([np.broadcast_to(a, a.shape[:2] + (channels,)) for a, _ in good])  # (N, H, W, C)
    return {
        "images": torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),  # (N, C, H, W)
        "labels": torch.tensor([label for _, label in good], dtype=torch.int64),
        "skipped": skipped,
    }


def load_split(split_dir: Path, samples: list[tuple[str, int]], options: LoadOptions, cache_dir: Path) -> ImageSet:
    """One split from the cache if the folder is unchanged, else decoded and cached atomically."""
    key = content_key(split_dir, samples, options.image_size)
    cache_file = cache_dir / f"{split_dir.name}-{key}.pt"
    if cache_file.is_file():
        data = torch.load(cache_file, weights_only=True)
    else:
        data = build_imageset(split_dir, samples, options.image_size)
        _save_atomic(data, cache_file)
        for stale in cache_dir.glob(f"{split_dir.name}-*.pt"):
            if stale != cache_file:
                stale.unlink(missing_ok=True)
    if data["skipped"]:
        if not options.skip_bad_images:
            listed = "; ".join(data["skipped"][:3]) + (f" and {len(data['skipped']) - 3} more" if len(data["skipped"]) > 3 else "")
            raise ResnetlabError(f"cannot read {len(data['skipped'])} image(s): {listed}. Fix or remove them, or pass --skip-bad-images")
        log.warning("skipped %d unreadable image(s) in %s: %s", len(data["skipped"]), split_dir, "; ".join(data["skipped"][:3]))
    return ImageSet(data["images"], data["labels"])


def _save_atomic(data: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        torch.save(data, tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def folder_cache_dir(root: Path) -> Path:
    """Per-folder cache directory, named after the folder and a hash of its absolute path."""
    path_hash = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:10]
    return cache_root() / "folders" / f"{root.resolve().name}-{path_hash}"


@register_source("folder", "your own images: DIR/train/<class>/* and DIR/test/<class>/* (or val/)")
def load_folder(data_dir: Path | None, options: LoadOptions) -> RawDataset:
    if data_dir is None:
        raise ResnetlabError("dataset 'folder' needs --data-dir DIR with DIR/train/<class>/ and DIR/test/<class>/")
    root = Path(data_dir).expanduser()
    train_dir, test_dir = split_dirs(root)
    classes, train_samples = scan_split(train_dir)
    test_classes, test_samples = scan_split(test_dir)
    if test_classes != classes:
        only_train = sorted(set(classes) - set(test_classes))
        only_test = sorted(set(test_classes) - set(classes))
        raise ResnetlabError(
            f"{train_dir} and {test_dir} have different classes (only in train: {only_train or 'none'}; "
            f"only in {test_dir.name}: {only_test or 'none'}): both must have the same class folders"
        )
    cache_dir = folder_cache_dir(root)
    train = load_split(train_dir, train_samples, options, cache_dir)
    test = load_split(test_dir, test_samples, options, cache_dir)
    if train.images.shape[1:] != test.images.shape[1:]:
        raise ResnetlabError(
            f"{train_dir} images are {tuple(train.images.shape[1:])} but {test_dir} images are "
            f"{tuple(test.images.shape[1:])} (C, H, W): give both splits the same size and colour mode, or pass --image-size"
        )
    indices = write_class_indices(classes, cache_dir / "class_indices.json")
    return RawDataset(classes, train, test, str(root.resolve()), {"cache": str(cache_dir), "class_indices": str(indices)})
