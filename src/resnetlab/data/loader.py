"""Training batches from a split held as one uint8 tensor, augmented with tensor operations.

Why not a DataLoader: where cores are few, worker processes decoding PIL images compete with the
training step for the same cores. Here the whole split sits in memory (50,000 CIFAR images are
150 MB; kept zero-padded and channels-last) and a batch is gathered, cropped and flipped by one
indexing op, then normalised on the training device.

The loader has no hidden state: epoch ``e`` draws its order and augmentation from a generator
seeded by ``(seed, e)``, and ``batches(e, start=k)`` resumes at batch ``k``. That is what makes
an interrupted run resume bit-identically.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from resnetlab.config_values import generator_seed
from resnetlab.data.choices import FLIP_MODES, PHOTO_AUGMENTATIONS, STAGE_MODES
from resnetlab.data.types import ImageSet


@dataclass(frozen=True)
class Augmentation:
    """The paper's augmentation by default: 4-pixel zero padding, random crop, random flip."""

    crop_padding: int = 4  # pixels of zero padding before the random crop (0 disables)
    flip: str = "random"  # "random" per image, "alternate" (mirror every other epoch), "none"
    cutout: int = 0  # side of a zeroed square (0 disables)
    crop_epochs: int | None = None  # crop only in epochs before this one; later epochs see whole images
    copies: int = 1  # copies of each image per batch, each its own crop (batch augmentation); 1: off
    size_stages: tuple[tuple[int, int], ...] = ()  # progressive resizing: (side, first epoch after the stage), in order
    stage_mode: str = "resize"  # the stages' images: "resize"d whole (padding scaled alike) or "crop"ped smaller
    photo: str = "random-resized-crop"  # photo folders (PhotoLoader): torchvision's reference, or the paper's "scale"

    def __post_init__(self) -> None:
        if self.flip not in FLIP_MODES:
            raise ValueError(f"flip must be one of {FLIP_MODES}, got {self.flip!r}")
        if self.photo not in PHOTO_AUGMENTATIONS:
            raise ValueError(f"photo augmentation must be one of {PHOTO_AUGMENTATIONS}, got {self.photo!r}")
        if self.copies < 1:
            raise ValueError(f"copies must be at least 1, got {self.copies}")
        if self.stage_mode not in STAGE_MODES:
            raise ValueError(f"stage mode must be one of {STAGE_MODES}, got {self.stage_mode!r}")

    def crops_in(self, epoch: int) -> bool:
        """Whether ``epoch`` takes random crops: training's last epochs may see whole images, as the
        test does (measured in docs/fast-recipe.md)."""
        cropping = bool(self.crop_padding) or self.crop_side(epoch) is not None
        return cropping and (self.crop_epochs is None or epoch < self.crop_epochs)

    def crop_side(self, epoch: int) -> int | None:
        """The side of ``epoch``'s smaller images under progressive resizing (None: full size).
        A network that ends in global average pooling runs unchanged on them, at the cost of their
        pixels: (24/32)^2 = 0.56 of a CIFAR image's."""
        return next((side for side, end in self.size_stages if epoch < end), None)


NO_AUGMENTATION = Augmentation(crop_padding=0, flip="none", cutout=0)


def normalised_black(mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(1, C, 1, 1): a zero (black) pixel after normalisation with ``mean``/``std`` (in [0, 1] units),
    what the zero padding of training crops shows and what test-time translations fill with."""
    return -torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) / torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)


class CopyPlan(NamedTuple):
    """One copy's augmentation of every image in an epoch."""

    offsets: torch.Tensor  # (N, 2) crop corner in the padded image (row, column)
    flips: torch.Tensor  # (N,) bool, mirrored
    centres: torch.Tensor  # (N, 2) cutout centre (row, column)


@dataclass(frozen=True)
class LoaderOptions:
    """What every loader takes besides its data and batch size (``create_loader`` passes them on).

    ``batch_size`` is the global batch: with ``world_size`` processes each rank takes rows
    ``rank::world_size`` of every global batch, so the union over ranks is the single-process batch.
    """

    mean: Sequence[float]
    std: Sequence[float]
    device: torch.device | str = "cpu"
    train: bool = False
    augmentation: Augmentation | None = None
    seed: int = 0
    drop_last: bool | None = None  # None: drop the last partial batch when training only
    rank: int = 0
    world_size: int = 1
    channels_last: bool = False


def batch_count(count: int, batch_size: int, *, drop_last: bool, train: bool, world_size: int = 1) -> int:
    """Batches in an epoch of ``count`` images: the full ones, and the last partial one unless
    ``drop_last``, or, when training, unless each of the ``world_size`` processes gets 2 or more of
    its images (BatchNorm cannot train on one)."""
    full, rest = divmod(count, batch_size)
    keep_rest = rest and not drop_last and (not train or rest // world_size >= 2)
    return full + int(bool(keep_rest))


class Batches:
    """What every loader shares: the options above, normalisation on the device, the batch count.

    Subclasses yield ``(normalised float images on device, int64 labels)`` from ``batches(epoch, start)``."""

    def __init__(self, count: int, batch_size: int, options: LoaderOptions) -> None:
        self.count, self.batch_size = count, batch_size
        self.device = torch.device(options.device)
        self.train, self.seed = options.train, options.seed
        self.drop_last = options.train if options.drop_last is None else options.drop_last
        self.rank, self.world_size = options.rank, options.world_size
        self.memory_format = torch.channels_last if options.channels_last else torch.contiguous_format
        # x/255 then (x - mean)/std folded into one multiply-add: x * scale + shift
        std = torch.tensor(options.std, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = std.to(self.device)
        self.scale = (1.0 / (255.0 * std)).to(self.device)
        self.shift = normalised_black(options.mean, options.std).to(self.device)

    @property
    def padding_value(self) -> torch.Tensor:
        """(1, C, 1, 1): a zero (black) pixel after normalisation, what the padding of training crops
        shows; test-time translations fill their borders with it."""
        return self.shift

    def __len__(self) -> int:
        return batch_count(self.count, self.batch_size, drop_last=self.drop_last, train=self.train, world_size=self.world_size)

    def epoch_generator(self, epoch: int) -> torch.Generator:
        """The generator of ``epoch``'s order (and a small-image loader's augmentation): seeded by
        (seed, epoch) alone, so any epoch can be drawn again, as a resume does."""
        return torch.Generator().manual_seed(generator_seed(self.seed * 100_003 + epoch))

    def rank_rows(self, order: torch.Tensor, batch: int) -> torch.Tensor:
        """This rank's rows of global batch number ``batch`` of ``order``: every ``world_size``-th row
        from ``rank`` on, so the ranks' rows together are the single-process batch."""
        return order[batch * self.batch_size : (batch + 1) * self.batch_size][self.rank :: self.world_size]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.batches(0)

    def batches(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        raise NotImplementedError


class TensorLoader(Batches):
    """Batches of (normalised float images, labels) on ``device`` from an in-memory split
    (``options``: the fields of ``LoaderOptions``)."""

    def __init__(self, data: ImageSet, batch_size: int, **options: Any) -> None:
        settings = LoaderOptions(**options)
        super().__init__(len(data.labels), batch_size, settings)
        self.augmentation = (settings.augmentation or Augmentation()) if self.train else NO_AUGMENTATION
        self.image_size = tuple(data.images.shape[2:])  # (H, W)
        p = self.augmentation.crop_padding
        padded = torch.nn.functional.pad(data.images, (p, p, p, p)) if p else data.images  # zeros around
        # Stored channels-last (N, H+2p, W+2p, C): a gathered batch is already in the fast layout.
        self.pixels = padded.permute(0, 2, 3, 1).contiguous().to(self.device)
        self.labels = data.labels.to(self.device)
        self._images = data.images if self.augmentation.size_stages and self.augmentation.stage_mode == "resize" else None
        self._resized: dict[int, torch.Tensor] = {}  # progressive resizing: side -> padded pixels, made when first used

    def epoch_view(self, epoch: int) -> tuple[torch.Tensor, tuple[int, int], int]:
        """(padded channels-last pixels, crop (H, W), padding) of ``epoch``: the images as they are,
        or under progressive resizing either smaller crops of them or the whole images resized to
        the stage's side (antialiased bilinear, as torchvision resizes), padded in proportion."""
        side = self.augmentation.crop_side(epoch)
        padding = self.augmentation.crop_padding
        if side is None:
            return self.pixels, self.image_size, padding
        if self._images is None:  # "crop": a side x side crop of the padded full-size image
            return self.pixels, (side, side), padding
        padding = round(padding * side / max(self.image_size))
        if side not in self._resized:
            small = torch.nn.functional.interpolate(self._images.float(), size=(side, side), mode="bilinear", antialias=True,
                                                    align_corners=False).round_().clamp_(0, 255).to(torch.uint8)
            small = torch.nn.functional.pad(small, (padding,) * 4) if padding else small
            self._resized[side] = small.permute(0, 2, 3, 1).contiguous().to(self.device)
        return self._resized[side], (side, side), padding

    def _epoch_plan(self, epoch: int) -> tuple[torch.Tensor, list[CopyPlan]]:
        """Order, and per copy the crop offsets, flips and cutout centres of a whole epoch, from one
        seeded generator. Copies beyond the first draw after it, so one copy is the plain loader."""
        n = len(self.labels)
        gen = self.epoch_generator(epoch)
        order = torch.randperm(n, generator=gen) if self.train else torch.arange(n)
        aug = self.augmentation
        pixels, (h, w), padding = self.epoch_view(epoch)
        spans = torch.tensor([pixels.shape[1] - h, pixels.shape[2] - w])  # corner positions - 1
        plans: list[CopyPlan] = []
        for copy in range(aug.copies):
            if (h, w) == self.image_size:
                offsets = torch.randint(0, 2 * aug.crop_padding + 1, (n, 2), generator=gen)
            else:
                offsets = torch.stack([torch.randint(0, int(span) + 1, (n,), generator=gen) for span in spans], 1)
            if not aug.crops_in(epoch):
                offsets[:] = spans // 2  # the centred crop: the image itself (drawn anyway, so flips stay as they were)
            if aug.flip == "random":
                flips = torch.rand(n, generator=gen) < 0.5
            elif aug.flip == "alternate":
                # Half the images mirrored at random in epoch 0, then each image flips every epoch;
                # a second copy shows the other side.
                flips = (torch.rand(n, generator=torch.Generator().manual_seed(self.seed)) < 0.5) ^ bool((epoch + copy) % 2)
            else:
                flips = torch.zeros(n, dtype=torch.bool)
            centres = torch.stack([torch.randint(0, h, (n,), generator=gen), torch.randint(0, w, (n,), generator=gen)], 1)
            plans.append(CopyPlan(offsets, flips, centres))
        return order, plans

    def batches(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield this rank's batches of ``epoch``, beginning at batch index ``start`` (with ``copies``
        copies of each image: the images of all copies one after the other, labels repeated)."""
        order, plans = self._epoch_plan(epoch)
        # The whole epoch's plan goes to the device in one copy per tensor, not four small ones per batch.
        order = self._to_device(order)
        plans = [CopyPlan(*(self._to_device(t) for t in plan)) for plan in plans]
        pixels, shape, _ = self.epoch_view(epoch)
        for b in range(start, len(self)):
            idx = self.rank_rows(order, b)
            copies = [self._augmented(pixels, idx, p.offsets[idx], p.flips[idx], p.centres[idx], shape) for p in plans]  # (B, H, W, C)
            x = copies[0] if len(copies) == 1 else torch.cat(copies)
            x = x.permute(0, 3, 1, 2)  # (B, C, H, W) view with channels-last strides
            x = x.float().mul_(self.scale).add_(self.shift)  # measured faster than a promoting uint8 * float mul
            labels = self.labels[idx]
            yield x.contiguous(memory_format=self.memory_format), labels.repeat(len(plans)) if len(plans) > 1 else labels

    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """A CPU tensor on the loader's device; to a GPU from pinned memory, without waiting."""
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)

    def crop_shape(self, epoch: int) -> tuple[int, int]:
        """(H, W) of ``epoch``'s training images: the images' own, or progressive resizing's smaller side."""
        side = self.augmentation.crop_side(epoch)
        return self.image_size if side is None else (side, side)

    def _augmented(self, pixels: torch.Tensor, idx: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor,
                   centres: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        """Gather, crop and flip a batch of crops of ``shape`` with ONE advanced-indexing op on the
        padded ``pixels`` (every argument already on the device)."""
        aug = self.augmentation
        if tuple(pixels.shape[1:3]) == shape and aug.flip == "none" and not aug.cutout:
            return pixels[idx]
        dev = self.device
        h, w = shape
        ys, xs = torch.arange(h, device=dev), torch.arange(w, device=dev)
        cols = xs.expand(len(idx), w)
        if aug.flip != "none":
            cols = torch.where(flips[:, None], w - 1 - xs, xs)  # a mirrored crop reads columns backwards
        rows = offsets[:, 0, None] + ys  # (B, H); offsets all zeros without padding
        cols = offsets[:, 1, None] + cols  # (B, W)
        x = pixels[idx[:, None, None], rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
        if aug.cutout:
            half = aug.cutout // 2
            cy, cx = centres[:, 0, None, None], centres[:, 1, None, None]
            mask = ((ys[None, :, None] - cy).abs() <= half) & ((xs[None, None, :] - cx).abs() <= half)  # (B, H, W)
            x = x.masked_fill(mask[..., None], 0)
        return x
