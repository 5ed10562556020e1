"""Training and evaluation batches from cached photos (``PhotoSet``), with the same contract as
``TensorLoader``: ``len``, ``batches(epoch, start)``, the global batch split over ranks.

The steps are ``PhotoPipeline``'s (``photo_pipeline``); this loader runs them on the memory cache.
With training crops cut in batches (``photo_views``) the cache is read on the training device where
it fits (``fits_on_device``), else a batch's boxes travel there.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from resnetlab.data.photo_pipeline import PhotoBatches
from resnetlab.data.photos import PhotoSet

DEVICE_CACHE_SHARE = 0.25  # of a GPU's free memory the training photos' cache may take there (the rest: the model's)


def fits_on_device(nbytes: int, device: torch.device) -> bool:
    """Whether ``nbytes`` of cached photos may live on ``device``: a GPU with ``DEVICE_CACHE_SHARE``
    of its free memory to spare. Elsewhere the cache stays in host memory (a CPU's is the same)."""
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= DEVICE_CACHE_SHARE * free


class PhotoLoader(PhotoBatches):
    """Batches of (normalised float images (B, C, S, S), labels) on ``device`` from a ``PhotoSet``
    held in memory (see ``PhotoBatches`` for the options)."""

    def __init__(self, data: PhotoSet, batch_size: int, **options: Any) -> None:
        super().__init__(data, batch_size, **options)
        self._source: PhotoSet | None = None  # the cache where batched crops read it, placed at the first batch

    def batches(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield this rank's batches of ``epoch``, beginning at batch index ``start``."""
        order = self.order(epoch)
        batched = self.batched and self.train  # evaluation's crops are slices: they need no resize on the device
        source = self._placed() if batched else self.data
        for b in range(start, len(self)):
            rows = self.rank_rows(order, b)
            images = [source.image(int(i)) for i in rows]
            pixels, colour = self.pipeline.batch(rows.tolist(), images, epoch, self.device if batched else None)
            yield self.normalise(pixels, colour), self.labels[rows].to(self.device)

    def _placed(self) -> PhotoSet:
        """The cache batched crops read: on the training device where it fits, else in host memory."""
        if self._source is None:
            on_device = fits_on_device(self.data.pixels.numel(), self.device)
            self._source = PhotoSet(self.data.pixels.to(self.device), self.data.offsets, self.data.shapes, self.data.labels,
                                    self.crop) if on_device else self.data
        return self._source
