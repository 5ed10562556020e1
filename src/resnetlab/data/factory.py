"""``load_dataset`` and ``create_loader``: the two calls training and the command line make.

A registered source reads the official splits; this module applies what is common to every
source, in one order: resize, validation split, subset, then statistics of what is left for
training (so the held-out images never leak into the normalisation).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from torchvision.transforms.v2 import functional as TF

# isort: off
from resnetlab.config_values import check_seed
from resnetlab.data import cifar, mnist, folder  # noqa: F401  (registers the sources, in this order)
# isort: on
from resnetlab.data.layout import NAME_HASH
from resnetlab.data.loader import TensorLoader
from resnetlab.data.orientation import DEFAULT_EXIF_ORIENTATION, check_exif_orientation
from resnetlab.data.photo_loader import PhotoLoader
from resnetlab.data.photos import PhotoFiles, PhotoSet
from resnetlab.data.sources import SourceOptions, get_source
from resnetlab.data.splits import split_validation, take_subset
from resnetlab.data.stats import channel_name, channel_stats, usable_std
from resnetlab.data.streaming import StreamingLoader
from resnetlab.data.types import DatasetBundle, ImageSet
from resnetlab.errors import ResnetlabError, option

log = logging.getLogger(__name__)


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    val_split: int | float = 0,  # images held out for validation: a count, or a fraction below 1
    seed: int = 0,
    download: bool = True,
    image_size: int | Sequence[int] | None = None,
    skip_bad_images: bool = False,
    subset: int | None = None,
    memory_budget: int | None = None,
    stream: bool | None = None,
    exif_orientation: str = DEFAULT_EXIF_ORIENTATION,
    split_rule: str = NAME_HASH,
) -> DatasetBundle:
    """Load ``name`` (cifar10, cifar100, mnist, fashion-mnist, folder) into memory.

    ``data_dir`` is the cache folder for the downloadable sets (default ``$RESNETLAB_DATA`` or
    ``~/.cache/resnetlab``) and the image folder itself for ``folder``. ``image_size`` resizes
    small images; for a photo folder it is the training crop S (default 224).
    ``memory_budget`` (bytes) bounds a photo folder's decoded cache (default: half the RAM);
    ``stream`` leaves a photo folder on disk for the streaming loader (None: when over the budget).
    An unsplit ``folder`` (``DIR/<class>/*``) takes its test split from ``val_split``, per class
    (``data/layout.py``); ``exif_orientation`` "apply" turns photos tagged as stored sideways
    upright (``data/orientation.py``; "ignore", as torchvision, reads the pixels as stored).
    ``split_rule`` is how an unsplit folder is split (``layout.NAME_HASH``; a run that started before
    it was split by ``layout.PERMUTATION``, and is read again so).
    """
    source = get_source(name)
    check_seed(seed)
    size = as_height_width(image_size)
    options = SourceOptions(download=download, image_size=size, skip_bad_images=skip_bad_images, memory_budget=memory_budget,
                            stream=stream, val_split=val_split, seed=seed, exif_orientation=check_exif_orientation(exif_orientation),
                            split_rule=split_rule)
    raw = source.load(Path(data_dir).expanduser() if data_dir else None, options)
    train, test = raw.train, raw.test
    if raw.pipeline == "small":
        train, test = resize(train, size), resize(test, size)
    train, val = split_validation(train, 0 if raw.val_split_used else val_split, seed)
    train = take_subset(train, subset, seed)
    mean, std = channel_stats(train.images) if isinstance(train, ImageSet) else train.channel_stats()
    return with_usable_std(DatasetBundle(name, raw.classes, train, test, val, mean, std, raw.location, raw.extra, raw.pipeline))


def with_usable_std(bundle: DatasetBundle) -> DatasetBundle:
    """``bundle`` with its constant channels normalised by 1 instead of std 0 (stats.usable_std),
    listed in ``extra["constant_channels"]`` and logged (in a run: its train.log)."""
    std, flat = usable_std(tuple(bundle.std))
    flat = sorted(set(flat) | set(bundle.extra.get("constant_channels", ())))
    if not flat:
        return bundle
    names = ", ".join(channel_name(c, len(std)) for c in flat)
    log.warning(f"channel {names} of the training images is constant (std 0): it is centred, not scaled, "
                "and carries no information")
    return replace(bundle, std=std, extra={**bundle.extra, "constant_channels": flat})


def as_height_width(image_size: int | Sequence[int] | None) -> tuple[int, int] | None:
    """``32`` or ``(32, 32)`` -> ``(32, 32)`` (H, W); None keeps the native size."""
    if image_size is None:
        return None
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or min(size) < 1:
        raise ResnetlabError(f"{option('image_size', image_size)} must be one positive size or HEIGHT WIDTH")
    return (int(size[0]), int(size[1]))


def resize(split: ImageSet, size: tuple[int, int] | None) -> ImageSet:
    """Resize a whole uint8 split with antialiasing (no-op when it already has that size)."""
    if size is None or tuple(split.images.shape[2:]) == size:
        return split
    return ImageSet(TF.resize(split.images, list(size), antialias=True), split.labels)


def create_loader(
    data: ImageSet | PhotoSet | PhotoFiles,
    batch_size: int,
    *,
    ten_crop: bool = False,
    num_workers: int | None = None,
    skip_bad_images: bool = False,
    photo_views: str = "auto",
    **options: Any,
) -> TensorLoader | PhotoLoader | StreamingLoader:
    """The one place a split becomes a loader: ``TensorLoader`` (small images), ``PhotoLoader``
    (photos cached in memory) or ``StreamingLoader`` (photos on disk, ``num_workers`` decoding
    processes); ``ten_crop`` for the paper's 10-crop evaluation of photos; ``photo_views`` where the
    photos' training crops are cut and streamed JPEGs decoded ("per-photo", "batched", "auto": see
    ``photo_pipeline``). ``options`` are the fields of ``data.loader.LoaderOptions`` (mean and std,
    device, train, augmentation, seed, ranks).

    All yield ``(normalised float images on device, int64 labels)`` from ``batches(epoch, start)``.
    """
    if isinstance(data, PhotoSet):
        return PhotoLoader(data, batch_size, ten_crop=ten_crop, photo_views=photo_views, **options)
    if isinstance(data, PhotoFiles):
        return StreamingLoader(data, batch_size, ten_crop=ten_crop, num_workers=num_workers, skip_bad_images=skip_bad_images,
                               photo_views=photo_views, **options)
    return TensorLoader(data, batch_size, **options)
