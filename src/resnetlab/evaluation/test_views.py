"""Test-time views: the image, its mirror image and small translations, averaged into one prediction.

Why translations help: training shows the network random crops of zero-padded images, so it has
learnt every object at a few pixels' offset; averaging its logits over the same offsets at test
time cancels some of the errors any single offset makes (the test-time averaging of Keller Jordan's
airbench, here over every move of up to ``shift`` pixels and with the black borders training saw).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from resnetlab.errors import ResnetlabError


def run_test_time_views(config: dict[str, Any]) -> tuple[bool, int]:
    """(flip, shift) as a run evaluated itself, from its saved config (older runs: no shift)."""
    return bool(config.get("test_time_flip", False)), int(config.get("test_time_shift", 0))


TEN_CROP_VIEWS = 10  # the paper's 10-crop testing: four corners and the centre, and their mirror images


def view_count(flip: bool, shift: int, ten_crop: bool = False) -> int:
    """How many forward passes ``view_averaged_logits`` averages per image (ten crops replace the others)."""
    views = (2 if flip else 1) * len(translations(shift))
    return TEN_CROP_VIEWS if ten_crop else views


def translations(shift: int) -> list[tuple[int, int]]:
    """Every (down, right) move of at most ``shift`` pixels on each axis, (0, 0) first: (2 shift + 1)^2."""
    if isinstance(shift, bool) or not isinstance(shift, int) or shift < 0:
        raise ResnetlabError(f"the test-time shift must be a whole number of pixels >= 0, got {shift!r}")
    moves = range(-shift, shift + 1)
    return sorted(((dy, dx) for dy in moves for dx in moves), key=lambda m: m != (0, 0))


def translated(images: torch.Tensor, down: int, right: int, fill: torch.Tensor | float) -> torch.Tensor:
    """``images`` (N, C, H, W) moved by (down, right) pixels; the uncovered border is ``fill``
    (a number, or one value per channel shaped (1, C, 1, 1))."""
    if down == right == 0:
        return images
    s = max(abs(down), abs(right))
    height, width = images.shape[-2:]
    padded = F.pad(images - fill, (s, s, s, s)) + fill  # zero padding, shifted to the fill value
    return padded[..., s - down : s - down + height, s - right : s - right + width]


def view_averaged_logits(model: nn.Module, images: torch.Tensor, *, flip: bool, shift: int = 0,
                         fill: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Logits averaged with equal weights over test-time views: the image (and its mirror image with
    ``flip``); with ``shift`` > 0, every translation by up to ``shift`` pixels on each axis.

    Why the border is ``fill``: training's random crops of zero-padded images show black borders,
    so a test view moved the same way should show black too (the normalised value of a zero pixel).
    Measured on ResNet-20 / CIFAR-10 (JPEG copy): black borders beat reflected ones by about 0.3
    points (docs/fast-recipe.md).

    Images of five dimensions (N, V, C, H, W) already hold V views of each image (a photo's ten
    crops): their logits are averaged as they are.
    """
    if images.ndim == 5:
        n, v = images.shape[:2]
        return model(images.flatten(0, 1)).float().view(n, v, -1).mean(1)
    height, width = images.shape[-2:]
    if shift >= min(height, width):
        raise ResnetlabError(f"a test-time shift of {shift} pixels needs images larger than {height}x{width}")
    total = None
    for down, right in translations(shift):
        view = translated(images, down, right, fill)
        logits = model(view).float()
        if flip:
            logits = logits + model(view.flip(3)).float()
        total = logits if total is None else total + logits
    return total / view_count(flip, shift)
