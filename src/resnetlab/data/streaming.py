"""Photos streamed from disk, for folders whose decoded cache would not fit in memory.

A ``DataLoader`` whose worker processes run the photo pipeline on each file (``decode_photo``, then
``PhotoPipeline.batch`` on a batch of one); the main process only normalises (on the training
device, from uint8: a quarter of float32's bytes). The pixels are those of the cached
``PhotoLoader``, bit for bit: the same decoder, the same steps, and each training crop drawn from
(seed, epoch, index) alone, whichever worker decodes it, so a resumed run is exact and streaming
changes nothing but where the decoding happens. Workers persist across epochs.

With crops cut in batches (``photo_views``: "batched", or "auto" on CUDA) the workers only read
the files and the training process decodes each batch's JPEGs on the device (``device_decode``)
and runs the pipeline there: the same boxes, pixels within a few levels.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from resnetlab.data.decode import UnreadableImage, decode_photo
from resnetlab.data.device_decode import decode_batch, read_photo
from resnetlab.data.photo_pipeline import PhotoBatches, PhotoPipeline
from resnetlab.data.photos import PhotoFiles, eval_resize
from resnetlab.errors import ResnetlabError, option

log = logging.getLogger(__name__)


def default_workers() -> int:
    """Decoding processes: every core but one (which trains), at least one."""
    return max(1, (os.cpu_count() or 2) - 1)


class PhotoStream(Dataset):
    """For an (index, epoch) key: the photo's pixels as ``pipeline`` makes them, a batch of one
    (None for an unreadable file), its RGB offsets (or None), its label and the error (or None)."""

    def __init__(self, files: PhotoFiles, pipeline: PhotoPipeline) -> None:
        self.files, self.pipeline, self.resize = files, pipeline, eval_resize(files.crop)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor | None, torch.Tensor | None, int, str | None]:
        index, epoch = key
        label = int(self.files.labels[index])
        try:
            image = decode_photo(self.files.paths[index], self.resize, self.files.exif_orientation)
        except UnreadableImage as exc:
            return None, None, label, exc.named
        pixels, colour = self.pipeline.batch([index], [image], epoch)
        return pixels, colour, label, None


class PhotoBytes(Dataset):
    """(index, ``device_decode.read_photo``'s payload or None, error or None) for an (index, epoch)
    key: what the training process decodes and cuts on its device."""

    def __init__(self, files: PhotoFiles) -> None:
        self.files, self.resize = files, eval_resize(files.crop)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: tuple[int, int]) -> tuple[int, tuple[torch.Tensor, bool] | None, str | None]:
        index = key[0]
        try:
            return index, read_photo(self.files.paths[index], self.resize, self.files.exif_orientation), None
        except UnreadableImage as exc:
            return index, None, exc.named


def collate_payloads(items: list[tuple[Any, ...]]) -> tuple[list[int], list[tuple[torch.Tensor, bool]], list[str]]:
    """The readable photos' indices and payloads (ragged: kept as lists), and the errors."""
    good = [item for item in items if item[2] is None]
    return [item[0] for item in good], [item[1] for item in good], [item[2] for item in items if item[2] is not None]


def collate(items: list[tuple[Any, ...]]) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor | None, list[str]]:
    """A batch of the readable photos (their batches of one joined), labels and RGB offsets, and the errors."""
    good = [item for item in items if item[3] is None]
    errors = [item[3] for item in items if item[3] is not None]
    if not good:
        return None, torch.empty(0, dtype=torch.int64), None, errors
    pixels = torch.cat([item[0] for item in good])
    colour = torch.cat([item[1] for item in good]) if good[0][1] is not None else None
    return pixels, torch.tensor([item[2] for item in good]), colour, errors


class EpochPlan:
    """The batch sampler: this rank's (index, epoch) keys of every batch from ``start`` on, for the
    epoch last set (the DataLoader reads it anew at each ``iter``, workers persist)."""

    def __init__(self, loader: StreamingLoader) -> None:
        self.loader, self.epoch, self.start = loader, 0, 0

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = self.loader.order(self.epoch)
        for b in range(self.start, len(self.loader)):
            yield [(int(i), self.epoch) for i in self.loader.rank_rows(order, b)]

    def __len__(self) -> int:
        return len(self.loader) - self.start


class StreamingLoader(PhotoBatches):
    """Batches of (normalised float images, labels) on ``device`` decoded from ``PhotoFiles`` by
    ``num_workers`` processes (0: in this process). ``skip_bad_images`` leaves unreadable photos
    out of their batch (named once); otherwise the first one stops the run with its name."""

    def __init__(self, data: PhotoFiles, batch_size: int, *, num_workers: int | None = None, ten_crop: bool = False,
                 skip_bad_images: bool = False, **options: Any) -> None:
        super().__init__(data, batch_size, ten_crop=ten_crop, **options)
        self.num_workers = default_workers() if num_workers is None else num_workers
        self.skip_bad_images = skip_bad_images
        self._reported: set[str] = set()
        self._loader: DataLoader | None = None
        self._plan = EpochPlan(self)

    def _data_loader(self) -> DataLoader:
        if self._loader is None:
            if self.batched:
                dataset, collate_fn = PhotoBytes(self.data), collate_payloads
            else:
                dataset, collate_fn = PhotoStream(self.data, self.pipeline), collate
            workers = self.num_workers
            self._loader = DataLoader(dataset, batch_sampler=self._plan, num_workers=workers, collate_fn=collate_fn,
                                      pin_memory=self.device.type == "cuda", persistent_workers=workers > 0,
                                      prefetch_factor=2 if workers > 0 else None)
        return self._loader

    def batches(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield this rank's batches of ``epoch``, beginning at batch index ``start``."""
        self._plan.epoch, self._plan.start = epoch, start
        try:
            for batch in self._data_loader():
                pixels, labels, colour, errors = self._on_device(*batch, epoch) if self.batched else batch
                self._report(errors)
                if pixels is None:
                    continue
                yield self.normalise(pixels, colour), labels.to(self.device, non_blocking=True)
        except RuntimeError as exc:
            if "DataLoader worker" not in str(exc):
                raise
            raise ResnetlabError(f"a photo-decoding worker process died ({str(exc).splitlines()[0]}): out of memory? "
                                 f"Lower {option('workers')} or {option('batch_size')}") from None

    def _on_device(self, indices: list[int], payloads: list[tuple[torch.Tensor, bool]], errors: list[str],
                   epoch: int) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor | None, list[str]]:
        """A batch of payloads decoded and cut on the device: (uint8 pixels, labels, RGB offsets, errors)."""
        paths = [self.data.paths[i] for i in indices]
        photos = decode_batch(payloads, paths, eval_resize(self.crop), self.device, self.data.exif_orientation)
        errors = errors + [photo.named for photo in photos if isinstance(photo, UnreadableImage)]
        kept = [(i, photo) for i, photo in zip(indices, photos) if not isinstance(photo, UnreadableImage)]
        if not kept:
            return None, torch.empty(0, dtype=torch.int64), None, errors
        rows = [i for i, _ in kept]
        pixels, colour = self.pipeline.batch(rows, [photo for _, photo in kept], epoch, self.device)
        return pixels, self.data.labels[rows], colour, errors

    def with_ten_crop(self) -> StreamingLoader:
        twin = super().with_ten_crop()
        twin._loader, twin._plan = None, EpochPlan(twin)
        return twin

    def _report(self, errors: list[str]) -> None:
        if not errors:
            return
        if not self.skip_bad_images:
            raise ResnetlabError(f"cannot read image {errors[0]}: fix or remove it, or pass {option('skip_bad_images', True)}")
        for error in errors:
            if error not in self._reported:
                self._reported.add(error)
                log.warning("skipped unreadable image %s", error)
