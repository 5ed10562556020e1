"""Image folders in torchvision's ImageFolder layout, decoded once into a uint8 cache.

``DIR/train/<class>/*`` and ``DIR/test/<class>/*`` (or ``DIR/val/``), or one unsplit folder of
class folders split by ``--val-split`` (``data/layout.py`` finds the files). The data decides how they
are read: small images of one size (at most 64 px: CIFAR, MNIST, thumbnails) are kept whole,
as one tensor, for the CIFAR pipeline; anything else is a photo folder (``data/photos.py``),
cached at the evaluation resize. The first load decodes
every image (``data/decode.py``: JPEGs with torchvision's libjpeg-turbo decoder, the rest with PIL; one process, as
a pool of two gained nothing measurable on two shared cores) and saves the split as one uint8 tensor keyed by
the folder's contents (relative paths, sizes, modification and change times, inodes) and the resize option; loading
the same folder again reads that file instead of 60,000 JPEGs. Any change to the folder changes
the key, so a stale cache is never used.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from resnetlab.data.decode import UnreadableImage, decode_small_image, header_size, survey_orientation
from resnetlab.data.download import cache_root
from resnetlab.data.layout import read_layout
from resnetlab.data.orientation import DEFAULT_EXIF_ORIENTATION
from resnetlab.data.photos import DEFAULT_CROP, PhotoFiles, PhotoSet, check_photo_crop, decode_photos, eval_resize, photo_bytes
from resnetlab.data.scan import listed
from resnetlab.data.sources import RawDataset, SourceOptions, register_source
from resnetlab.data.types import ImageSet
from resnetlab.errors import ResnetlabError, option
from resnetlab.files import atomic_save

log = logging.getLogger(__name__)
CACHE_VERSION = 2  # bump when the cache layout changes
DETECT_SAMPLE = 2000  # image headers read to tell small images from photos
SMALL_SIDE = 64  # images of one size up to this side are "small" (CIFAR, MNIST, thumbnails)


def content_key(split_dir: Path, samples: list[tuple[str, int]], variant: str) -> str:
    """A hash of every file's relative path, size, mtime, ctime and inode, plus ``variant``: what changes the pixels.

    git's index rule: pixels rewritten at the same size with the mtime set back (``touch -d``,
    ``cp -p``, an editor that keeps it) still change the ctime, which no user can set, or the inode
    (a file replaced by a rename); one ``stat`` per file, as before, and no file read."""
    digest = hashlib.sha256(f"v{CACHE_VERSION} {variant}\n".encode())
    for path, label in samples:
        st = os.stat(path)
        digest.update(f"{os.path.relpath(path, split_dir)}\0{label}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}"
                      f"\0{st.st_ino}\n".encode())
    return digest.hexdigest()[:20]


class MixedSizes(ResnetlabError):
    """A folder of small images that are not all one size: read as photos instead."""


def build_imageset(split_dir: Path, samples: list[tuple[str, int]], image_size: tuple[int, int] | None,
                   exif_orientation: str = DEFAULT_EXIF_ORIENTATION) -> dict:
    """Decode every image of one split into {"images", "labels", "skipped"} (bad files listed, not kept)."""
    good: list[tuple[str, np.ndarray, int]] = []  # (path, (H, W, C) pixels, label)
    skipped: list[str] = []
    for path, label in samples:
        try:
            good.append((path, decode_small_image(path, image_size, exif_orientation), label))
        except UnreadableImage as exc:
            skipped.append(exc.named)
    if not good:
        raise ResnetlabError(f"no readable images in {split_dir}: {skipped[0] if skipped else ''}")
    odd = next((item for item in good if item[1].shape[:2] != good[0][1].shape[:2]), None)
    if odd is not None:
        (first, (h1, w1, _)), (other, (h2, w2, _)) = (good[0][0], good[0][1].shape), (odd[0], odd[1].shape)
        raise MixedSizes(  # sizes as width x height, as image viewers give them
            f"images in {split_dir} differ in size ({first} is {w1}x{h1}, {other} is {w2}x{h2}): "
            f"pass {option('image_size', metavar='N')} to resize them all to NxN"
        )
    channels = max(a.shape[2] for _, a, _ in good)  # any colour image makes the whole split RGB
    images = np.stack([np.broadcast_to(a, a.shape[:2] + (channels,)) for _, a, _ in good])  # (N, H, W, C)
    return {
        "images": torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),  # (N, C, H, W)
        "labels": torch.tensor([label for _, _, label in good], dtype=torch.int64),
        "skipped": skipped,
    }


def load_split(split_dir: Path, samples: list[tuple[str, int]], options: SourceOptions, cache_dir: Path,
               build: Callable[[], dict], variant: str, name: str) -> dict:
    """One split's decoded form from the cache if the folder is unchanged, else ``build()``, cached
    atomically as ``name-<key>.pt``. ``variant`` names what changes the pixels (the resize option,
    the photo resize)."""
    key = content_key(split_dir, samples, variant)
    cache_file = cache_dir / f"{name}-{key}.pt"
    data = _read_cache(cache_file)
    if data is None:
        data = build()
        atomic_save(data, cache_file)
        for stale in cache_dir.glob(f"{name}-*.pt"):
            if stale != cache_file:
                stale.unlink(missing_ok=True)
    if data["skipped"]:
        if not options.skip_bad_images:
            raise ResnetlabError(f"cannot read {len(data['skipped'])} image(s): {listed(data['skipped'])}. "
                                 f"Fix or remove them, or pass {option('skip_bad_images', True)}")
        log.warning("skipped %d unreadable image(s) in %s: %s", len(data["skipped"]), split_dir, listed(data["skipped"]))
    return data


def _read_cache(cache_file: Path) -> dict | None:
    """The cached split, or None when there is none or it cannot be read (then it is rebuilt)."""
    if not cache_file.is_file():
        return None
    try:
        data = torch.load(cache_file, weights_only=True)
    except Exception as exc:  # a cut-off or damaged cache file is rebuilt, whatever torch says about it
        log.warning("rebuilding the damaged folder cache %s (%s)", cache_file, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return None
    return data if isinstance(data, dict) and "labels" in data and "skipped" in data else None


def folder_cache_dir(root: Path) -> Path:
    """Per-folder cache directory, named after the folder and a hash of its absolute path."""
    path_hash = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:10]
    return cache_root() / "folders" / f"{root.resolve().name}-{path_hash}"


def detect_pipeline(samples: list[tuple[str, int]]) -> tuple[str, str]:
    """("small" | "photos", why): small images of one size keep the in-memory CIFAR path; anything
    else is read as photos. Decided from the image headers (at most ``DETECT_SAMPLE`` of them,
    evenly spaced), which cost microseconds each."""
    step = max(1, len(samples) // DETECT_SAMPLE)
    sizes = set()
    for path, _ in samples[::step]:
        try:
            sizes.add(header_size(path))
        except UnreadableImage:
            continue  # named when the images are decoded
    if len(sizes) == 1 and max(next(iter(sizes))) <= SMALL_SIDE:
        w, h = next(iter(sizes))
        return "small", f"every image is {w}x{h} (at most {SMALL_SIDE} px): kept whole in memory, padded and cropped as CIFAR"
    largest = max(sizes, key=lambda s: s[0] * s[1], default=(0, 0))
    kinds = f"{len(sizes)} sizes" if len(sizes) > 1 else "one size"
    return "photos", (f"{kinds} up to {largest[0]}x{largest[1]}: photos, resized and cropped as torchvision's "
                      "ImageNet references do")


@register_source("folder", "your own images: DIR/train/<class>/* and DIR/test/<class>/* (or val/), or DIR/<class>/* with --val-split")
def load_folder(data_dir: Path | None, options: SourceOptions) -> RawDataset:
    if data_dir is None:
        raise ResnetlabError(f"dataset 'folder' needs {option('data_dir', metavar='DIR')} with DIR/train/<class>/ and DIR/test/<class>/ "
                             f"(or DIR/<class>/ and {option('val_split', metavar='FRACTION')})")
    root = Path(data_dir).expanduser()
    layout = read_layout(root, options.val_split, options.seed, options.split_rule)
    classes, train_samples, test_samples = layout.classes, layout.train, layout.test
    cache_dir = folder_cache_dir(root)
    pipeline, why = detect_pipeline(train_samples + test_samples)
    splits = ((layout.train_dir, train_samples, "train"), (layout.test_dir, test_samples, layout.test_name))
    if pipeline == "small":
        try:
            train, test = (small_split(d, s, options, cache_dir, name) for d, s, name in splits)
        except MixedSizes:
            if options.image_size is not None:
                raise
            pipeline, why = "photos", "images of several sizes: photos, resized and cropped as torchvision's ImageNet references do"
    storage = {}
    if pipeline == "photos":
        crop = photo_crop(options.image_size)
        storage["storage"], storage["storage_reason"] = photo_storage(train_samples + test_samples, crop, options)
        if storage["storage"] == "stream":
            train, test = (photo_files(s, crop, options.exif_orientation) for _, s, _ in splits)
        else:
            train, test = (photo_split(d, s, options, cache_dir, crop, name) for d, s, name in splits)
    elif train.images.shape[1:] != test.images.shape[1:]:
        raise ResnetlabError(
            f"{layout.train_dir} images are {tuple(train.images.shape[1:])} but {layout.test_dir} images are "
            f"{tuple(test.images.shape[1:])} (C, H, W): give both splits the same size and colour mode, or pass {option('image_size')}"
        )
    extra = {"cache": str(cache_dir), "pipeline_reason": why, **storage,
             "test_split": layout.test_name, "passed_over": layout.passed,
             "exif_orientation": survey_orientation([p for p, _ in train_samples + test_samples], options.exif_orientation)}
    if layout.split is not None:
        extra["split"] = layout.split
    return RawDataset(classes, train, test, str(root.resolve()), extra, pipeline=pipeline, val_split_used=layout.split is not None)


def small_split(split_dir: Path, samples: list[tuple[str, int]], options: SourceOptions, cache_dir: Path, name: str) -> ImageSet:
    """A split of small images of one size (or resized to ``--image-size``) as one uint8 tensor."""
    rule = options.exif_orientation
    data = load_split(split_dir, samples, options, cache_dir, lambda: build_imageset(split_dir, samples, options.image_size, rule),
                      f"size={options.image_size}{exif_variant(rule)}", name)
    return ImageSet(data["images"], data["labels"])


def photo_split(split_dir: Path, samples: list[tuple[str, int]], options: SourceOptions, cache_dir: Path, crop: int,
                name: str) -> PhotoSet:
    """A split of photos at the evaluation resize for ``crop`` (see ``data/photos.py``)."""
    resize, rule = eval_resize(crop), options.exif_orientation
    paths, labels = [p for p, _ in samples], [label for _, label in samples]
    data = load_split(split_dir, samples, options, cache_dir, lambda: _decode_or_refuse(split_dir, paths, labels, resize, rule),
                      f"photos shorter-side={resize}{exif_variant(rule)}", name)
    return PhotoSet(data["pixels"], data["offsets"], data["shapes"], data["labels"], crop)


def exif_variant(rule: str) -> str:
    """The cache key's note of the EXIF rule: none for the default, so caches made before it stay valid."""
    return "" if rule == DEFAULT_EXIF_ORIENTATION else f" exif={rule}"


def _decode_or_refuse(split_dir: Path, paths: list[str], labels: list[int], resize: int, rule: str) -> dict:
    data = decode_photos(paths, labels, resize, rule)
    if not len(data["labels"]):
        raise ResnetlabError(f"no readable images in {split_dir}: {data['skipped'][0] if data['skipped'] else ''}")
    return data


def photo_crop(image_size: tuple[int, int] | None) -> int:
    """The training crop S of a photo folder: ``--image-size`` (one side), 224 when not given."""
    if image_size is None:
        return DEFAULT_CROP
    if image_size[0] != image_size[1]:
        raise ResnetlabError(f"{option('image_size')} for a photo folder is one crop side S (square crops), "
                             f"got {image_size[0]} {image_size[1]}")
    return check_photo_crop(image_size[0])


def photo_storage(samples: list[tuple[str, int]], crop: int, options: SourceOptions) -> tuple[str, str]:
    """("memory" | "stream", why): photos are cached in memory when their decoded size fits the
    budget (estimated from the headers of a sample), streamed from disk otherwise or when asked."""
    step = max(1, len(samples) // DETECT_SAMPLE)
    sizes = [b for path, _ in samples[::step] if (b := photo_bytes(path, eval_resize(crop))) is not None]
    needed = sum(sizes) / len(sizes) * len(samples) if sizes else 0.0
    allowed = options.memory_budget if options.memory_budget is not None else default_memory_budget()
    figures = f"{needed / 2**30:.2f} GiB decoded at a shorter side of {eval_resize(crop)} px, budget {allowed / 2**30:.1f} GiB"
    if options.stream:
        return "stream", f"streamed from disk as asked ({figures})"
    if needed <= allowed:
        return "memory", f"cached in memory ({figures})"
    if options.stream is False:
        raise ResnetlabError(f"the {len(samples):,} photos need {figures}: pass a larger {option('memory_budget_gb')}, "
                             f"a smaller {option('image_size')}, or {option('stream', True)}")
    return "stream", f"streamed from disk: the cache would not fit ({figures})"


def photo_files(samples: list[tuple[str, int]], crop: int, exif_orientation: str) -> PhotoFiles:
    """A split left on disk, read by the streaming loader."""
    return PhotoFiles([p for p, _ in samples], torch.tensor([label for _, label in samples], dtype=torch.int64), crop, exif_orientation)


def default_memory_budget() -> int:
    """Half of this machine's memory: the photo cache must leave room for the model and the batches."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):
        return 4 * 2**30
