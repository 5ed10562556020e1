"""Registry of dataset sources: each format registers a loader by name; no if/elif over names.

A source turns ``data_dir`` (and the load options) into the raw splits; everything common to
all sources (resizing, validation split, subset, statistics) happens once in ``factory.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from resnetlab.data.photos import PhotoFiles, PhotoSet
from resnetlab.data.types import ImageSet
from resnetlab.errors import lookup


@dataclass(frozen=True)
class SourceOptions:
    """What the user asked of a dataset, passed to every source (a source ignores what it cannot use);
    not to be confused with ``loader.LoaderOptions``, what a loader of one split takes."""

    download: bool = True
    image_size: tuple[int, int] | None = None  # (H, W) to resize to; None keeps the native size
    skip_bad_images: bool = False
    memory_budget: int | None = None  # bytes a photo folder's decoded cache may take (None: half the RAM)
    stream: bool | None = None  # photo folders: decode from disk every epoch (None: when the cache would not fit)
    val_split: int | float = 0  # an unsplit image folder: photos held out of each class for testing (data/layout.py)
    seed: int = 0  # ... each photo's draw seeded by this
    split_rule: str = "name-hash"  # ... by this rule (layout.SPLIT_RULES: "permutation" for runs that started before)
    exif_orientation: str = "ignore"  # image folders: "apply" turns photos tagged as stored sideways upright


@dataclass
class RawDataset:
    """A source's output: the official train/test splits held in memory as uint8."""

    classes: list[str]
    train: ImageSet | PhotoSet | PhotoFiles
    test: ImageSet | PhotoSet | PhotoFiles
    location: str  # where the files are, for ``resnetlab data info``
    extra: dict = field(default_factory=dict)  # source-specific facts (cache folder, skipped files)
    pipeline: str = "small"  # "small": one size, padded crops (CIFAR); "photos": any size (data/photos.py)
    val_split_used: bool = False  # the test split was held out of the images by val_split (an unsplit folder): not again


SourceLoader = Callable[[Path | None, SourceOptions], RawDataset]


@dataclass(frozen=True)
class DatasetSource:
    name: str
    description: str
    load: SourceLoader


_SOURCES: dict[str, DatasetSource] = {}


def register_source(name: str, description: str) -> Callable[[SourceLoader], SourceLoader]:
    """Decorator: register ``load(data_dir, options) -> RawDataset`` under ``name``."""

    def decorate(load: SourceLoader) -> SourceLoader:
        if name in _SOURCES:
            raise ValueError(f"dataset {name!r} is registered twice")
        _SOURCES[name] = DatasetSource(name, description, load)
        return load

    return decorate


def list_datasets() -> list[str]:
    """Registered dataset names, in registration order."""
    return list(_SOURCES)


def get_source(name: str) -> DatasetSource:
    """The source registered as ``name``; an unknown name raises listing the known ones."""
    return lookup(_SOURCES, name, "dataset", f"Known datasets: {', '.join(_SOURCES)}")
