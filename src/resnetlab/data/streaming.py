"""Streaming batches for image folders too big for memory: DataLoader + transforms.v2.

Same interface as ``TensorLoader`` (``len``, ``batches(epoch, start)``, global batch split
over ranks) and the same augmentation options. Every image's augmentation is drawn from a
generator seeded by (seed, epoch, index), so batches do not depend on which worker decoded
them, and resuming at (epoch, batch) reproduces the uninterrupted run.

Workers hand over uint8 images (a quarter of float32's bytes to pin and copy); they are
normalised on the training device, as ``TensorLoader`` does. The workers live as long as the
loader (``persistent_workers``): each epoch only changes the batch plan they are sent.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

from resnetlab.data.folder import decode_image
from resnetlab.data.loader import NO_AUGMENTATION, Augmentation, normalised_black
from resnetlab.errors import ResnetlabError


class AugmentedFolder(Dataset):
    """(image uint8 (C, H, W), label) for an (index, epoch) key, augmented reproducibly."""

    def __init__(self, root: Path, augmentation: Augmentation, seed: int, image_size: tuple[int, int] | None) -> None:
        self.folder = ImageFolder(str(root), loader=lambda path: path)  # decoding happens below
        self.augmentation, self.seed, self.image_size = augmentation, seed, image_size

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, epoch = key
        path, label = self.folder.samples[index]
        array = decode_image(path, self.image_size)
        if isinstance(array, str):
            raise RuntimeError(f"cannot read image {path}: {array}")
        x = torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()  # (C, H, W) uint8
        return self.augment(x, index, epoch), label

    def augment(self, x: torch.Tensor, index: int, epoch: int) -> torch.Tensor:
        aug = self.augmentation
        gen = torch.Generator().manual_seed((self.seed * 100_003 + epoch) * 10_000_019 + index)
        h, w = x.shape[1:]
        if aug.crop_padding:
            p = aug.crop_padding
            top, left = torch.randint(0, 2 * p + 1, (2,), generator=gen).tolist()  # drawn in every epoch: flips stay as they were
            if aug.crops_in(epoch):
                x = v2.functional.pad(x, [p, p, p, p])[:, top : top + h, left : left + w]
        flip = bool(torch.rand(1, generator=gen) < 0.5)
        if aug.flip == "alternate":
            flip = bool(torch.rand(1, generator=torch.Generator().manual_seed(self.seed * 10_000_019 + index)) < 0.5) ^ bool(epoch % 2)
        if aug.flip != "none" and flip:
            x = x.flip(2)
        if aug.cutout:
            cy, cx = torch.randint(0, h, (1,), generator=gen).item(), torch.randint(0, w, (1,), generator=gen).item()
            half = aug.cutout // 2
            x[:, max(cy - half, 0) : cy + half + 1, max(cx - half, 0) : cx + half + 1] = 0
        return x


class EpochBatches:
    """The batch sampler of a long-lived DataLoader: the batches of whichever (epoch, start) was
    set last (iterated in the main process, so persistent workers need not know)."""

    def __init__(self) -> None:
        self.plan: list[list[tuple[int, int]]] = []

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter(self.plan)

    def __len__(self) -> int:
        return len(self.plan)


class StreamingLoader:
    """Batches of (normalised float images, labels) on ``device`` decoded from a class folder."""

    def __init__(
        self,
        root: Path,
        batch_size: int,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device | str = "cpu",
        train: bool = False,
        augmentation: Augmentation | None = None,
        seed: int = 0,
        drop_last: bool | None = None,
        rank: int = 0,
        world_size: int = 1,
        channels_last: bool = False,
        image_size: tuple[int, int] | None = None,
        num_workers: int = 2,
    ) -> None:
        aug = (augmentation or Augmentation()) if train else NO_AUGMENTATION
        if aug.copies > 1:
            raise ResnetlabError("several copies of each image per batch need the in-memory loader (TensorLoader)")
        self.dataset = AugmentedFolder(root, aug, seed, image_size)
        self.classes = self.dataset.folder.classes
        self.batch_size, self.train, self.seed = batch_size, train, seed
        self.drop_last = train if drop_last is None else drop_last
        self.rank, self.world_size, self.num_workers = rank, world_size, num_workers
        self.device = torch.device(device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        shape = (1, -1, 1, 1)
        # x/255 then (x - mean)/std folded into one multiply-add on the device: x * scale + shift
        self.scale = 1.0 / (255.0 * torch.tensor(std, dtype=torch.float32, device=self.device).view(shape))
        self.shift = normalised_black(mean, std).to(self.device)
        self.sampler = EpochBatches()
        self.loader = DataLoader(self.dataset, batch_sampler=self.sampler, num_workers=num_workers,
                                 pin_memory=self.device.type == "cuda", persistent_workers=num_workers > 0)

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def batches(self, epoch: int = 0, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield this rank's batches of ``epoch``, beginning at batch index ``start``."""
        n = len(self.dataset)
        gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(n, generator=gen) if self.train else torch.arange(n)
        self.sampler.plan = [
            [(i, epoch) for i in order[b * self.batch_size : (b + 1) * self.batch_size][self.rank :: self.world_size].tolist()]
            for b in range(start, len(self))
        ]
        for images, labels in self.loader:
            images = images.to(self.device, non_blocking=True).float().mul_(self.scale).add_(self.shift)
            yield images.contiguous(memory_format=self.memory_format), labels.to(self.device, non_blocking=True)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.batches(0)
