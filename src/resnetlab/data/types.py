"""The in-memory form every data source produces, whatever its file format."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from resnetlab.data.photos import PhotoFiles, PhotoSet


@dataclass
class ImageSet:
    """One split held in memory: ``images`` uint8 (N, C, H, W), ``labels`` int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError("labels must have one entry per image")

    def __len__(self) -> int:
        return self.images.shape[0]

    def take(self, indices: torch.Tensor) -> ImageSet:
        return ImageSet(self.images[indices], self.labels[indices])

    def preview(self, rows: torch.Tensor) -> torch.Tensor:
        """uint8 (n, C, H, W): the images at ``rows`` as the model sees them (figures, sample grids)."""
        return self.images[rows]


@dataclass
class DatasetBundle:
    """A loaded dataset: its splits, class names and normalisation (from the training split).

    ``pipeline`` is "small" (one image size, ``ImageSet``) or "photos" (any size: ``PhotoSet`` in
    memory, or ``PhotoFiles`` streamed from disk).
    """

    name: str
    classes: list[str]
    train: ImageSet | PhotoSet | PhotoFiles
    test: ImageSet | PhotoSet | PhotoFiles
    val: ImageSet | PhotoSet | PhotoFiles | None = None
    mean: tuple[float, ...] = ()  # per channel, in [0, 1] pixel units
    std: tuple[float, ...] = ()
    location: str = ""
    extra: dict = field(default_factory=dict)
    pipeline: str = "small"

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the model's input: the images themselves, or a photo folder's crops."""
        if isinstance(self.train, ImageSet):
            return tuple(self.train.images.shape[1:])  # type: ignore[return-value]
        return (self.train.channels, self.train.crop, self.train.crop)  # photos, cached or streamed

    @property
    def num_classes(self) -> int:
        return len(self.classes)
