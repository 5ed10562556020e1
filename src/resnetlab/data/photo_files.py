"""Photos left on disk: one split's paths and labels, read one photo at a time.

What a folder becomes when its decoded cache would not fit in memory (or ``stream`` asks for it);
the streaming loader decodes it in worker processes. It sits below the loaders, so that
``types.py`` can name it without importing a loader.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.transforms.v2 import functional as TF

from resnetlab.data.orientation import DEFAULT_EXIF_ORIENTATION
from resnetlab.data.photos import decode_photo, eval_resize
from resnetlab.data.stats import channel_stats
from resnetlab.errors import ResnetlabError

STATS_SAMPLE = 512  # photos decoded to estimate a streamed folder's mean and std


@dataclass
class PhotoFiles:
    """One split of photos left on disk: paths, labels and the crop side S the model sees."""

    paths: list[str]
    labels: torch.Tensor
    crop: int
    exif_orientation: str = DEFAULT_EXIF_ORIENTATION  # how a photo tagged as stored sideways is read (data/orientation.py)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def channels(self) -> int:
        return 3

    def take(self, indices: torch.Tensor) -> PhotoFiles:
        return PhotoFiles([self.paths[int(i)] for i in indices], self.labels[indices], self.crop, self.exif_orientation)

    def decoded(self, index: int) -> torch.Tensor:
        """Photo ``index`` at the evaluation resize, uint8 (C, H, W); a bad file raises naming it."""
        array = decode_photo(self.paths[index], eval_resize(self.crop), self.exif_orientation)
        if isinstance(array, str):
            raise ResnetlabError(f"cannot read image {self.paths[index]} ({array}): fix or remove it")
        return torch.from_numpy(array.copy()).permute(2, 0, 1)

    def preview(self, rows: torch.Tensor) -> torch.Tensor:
        """uint8 (n, C, S, S): the centre crops the model is evaluated on."""
        if len(rows) == 0:
            return torch.empty(0, 3, self.crop, self.crop, dtype=torch.uint8)
        return torch.stack([TF.center_crop(self.decoded(int(i)), [self.crop, self.crop]) for i in rows])

    def channel_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Mean and std per channel of an evenly spaced sample of ``STATS_SAMPLE`` photos (decoding
        them all would cost an epoch); unreadable ones are left out of the sample."""
        step = max(1, len(self) // STATS_SAMPLE)
        planes = []
        for i in range(0, len(self), step):
            array = decode_photo(self.paths[i], eval_resize(self.crop), self.exif_orientation)
            if not isinstance(array, str):
                planes.append(torch.from_numpy(array.copy()).reshape(-1, 3))
        if not planes:
            raise ResnetlabError(f"none of the sampled photos could be read (first: {self.paths[0]})")
        return channel_stats(torch.cat(planes).T[None, :, :, None])
