"""Per-channel mean and std of a split, in [0, 1] pixel units, for normalisation."""

from __future__ import annotations

import torch


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and (population) std per channel of uint8 ``images`` (N, C, H, W).

    Exact and fast: a 256-bin histogram per channel, instead of a float copy of every pixel.
    """
    channels = images.shape[1]
    hist = torch.stack([torch.bincount(images[:, c].reshape(-1), minlength=256) for c in range(channels)]).double()  # (C, 256)
    values = torch.arange(256, dtype=torch.float64)
    count = hist.sum(1)
    mean = hist @ values / count
    std = (hist @ values.square() / count - mean.square()).clamp_min(0).sqrt()
    return tuple((mean / 255).tolist()), tuple((std / 255).tolist())


FLAT_STD = 1 / 255  # less spread than one grey level: the channel is (nearly) constant
CHANNEL_NAMES = {1: ("gray",), 3: ("red", "green", "blue"), 4: ("red", "green", "blue", "alpha")}


def usable_std(std: tuple[float, ...]) -> tuple[tuple[float, ...], list[int]]:
    """(``std`` with every (nearly) constant channel's entry set to 1, the indices of those channels).

    A channel of one value (a blank alpha or colour plane, a synthetic set) has std 0, and dividing
    by it turns every pixel into inf and the first step's loss into NaN. Dividing by 1 instead only
    centres the channel: in training it is all zeros, so it cannot mislead the network."""
    flat = [c for c, s in enumerate(std) if not s >= FLAT_STD]  # also catches NaN
    return tuple(1.0 if c in flat else float(s) for c, s in enumerate(std)), flat


def channel_name(index: int, channels: int) -> str:
    """'2 (blue)' for channel 2 of 3; '5' where channels have no usual names."""
    names = CHANNEL_NAMES.get(channels)
    return f"{index} ({names[index]})" if names else str(index)
