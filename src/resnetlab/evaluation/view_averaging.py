"""Test-time views: the image, its mirror image and small translations, averaged into one prediction.

Why translations help: training shows the network random crops of zero-padded images, so it has
learnt every object at a few pixels' offset; averaging its logits over the same offsets at test
time cancels some of the errors any single offset makes (the test-time averaging of Keller Jordan's
airbench, here over every move of up to ``shift`` pixels and with the black borders training saw).

``TestViews`` names the views once for every reader: training's evaluation, checkpoints,
``evaluate``, ``Predictor``, reports and the ``--test-time-*`` flags of ``eval`` and ``predict``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from resnetlab.errors import ResnetlabError

TEN_CROP_VIEWS = 10  # the paper's 10-crop testing: four corners and the centre, and their mirror images
TEN_CROP_NEEDS_PHOTOS = ("ten-crop testing is for models trained on photo folders (crops of a larger photo): "
                         "use --test-time-flip and --test-time-shift for small images")


def check_shift(shift: int) -> None:
    """A shift is a whole number of pixels >= 0 (``True`` is not one)."""
    if isinstance(shift, bool) or not isinstance(shift, int) or shift < 0:
        raise ResnetlabError(f"the test-time shift must be a whole number of pixels >= 0, got {shift!r}")


@dataclass(frozen=True)
class TestViews:
    """Which views of each test image are averaged into its prediction: the image (and its mirror
    image with ``flip``) moved by up to ``shift`` pixels on each axis, or, with ``ten_crop``, a
    photo's ten crops instead. Frozen, so that one value can be handed around and recorded."""

    __test__ = False  # a class named Test*: not for pytest to collect

    flip: bool = False
    shift: int = 0
    ten_crop: bool = False

    def __post_init__(self) -> None:
        check_shift(self.shift)  # refused here, before any data is read

    @property
    def count(self) -> int:
        """Forward passes per image (ten crops replace the others)."""
        return TEN_CROP_VIEWS if self.ten_crop else (2 if self.flip else 1) * len(translations(self.shift))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TestViews:
        """The views of a run's final evaluation, from its saved config (older runs: no shift, no ten crops)."""
        return cls(flip=bool(config.get("test_time_flip", False)), shift=int(config.get("test_time_shift", 0)),
                   ten_crop=bool(config.get("test_time_ten_crop", False)))

    @classmethod
    def from_checkpoint(cls, ckpt: Mapping[str, Any]) -> TestViews:
        """The views a checkpoint's run evaluated itself with: its ``test_views`` entry, or, in
        checkpoints written before it, what its config says."""
        saved = ckpt.get("test_views")
        if saved is None:
            return cls.from_config(ckpt.get("config") or {})
        if not isinstance(saved, Mapping):
            raise ResnetlabError(f"the checkpoint's test_views is {str(saved)[:80]}: expected {{'flip', 'shift', 'ten_crop'}}")
        return cls(flip=bool(saved.get("flip", False)), shift=saved.get("shift", 0), ten_crop=bool(saved.get("ten_crop", False)))

    def overridden(self, *, flip: bool | None = None, shift: int | None = None, ten_crop: bool | None = None) -> TestViews:
        """A copy with every setting that is given (not None) replacing this one's: "as the run did, but ..."."""
        given = {"flip": flip, "shift": shift, "ten_crop": ten_crop}
        return replace(self, **{name: value for name, value in given.items() if value is not None})

    def as_dict(self) -> dict[str, bool | int]:
        """Plain types: JSON output, and checkpoints that ``torch.load(weights_only=True)`` reads."""
        return {"flip": self.flip, "shift": self.shift, "ten_crop": self.ten_crop}

    def describe(self) -> str:
        """Words for a result line: "1 view", "flip + 1-pixel shift: 18 views", "ten crops: 10 views"."""
        given = (("flip", self.flip), (f"{self.shift}-pixel shift", self.shift > 0))
        kinds = ["ten crops"] if self.ten_crop else [kind for kind, on in given if on]
        return f"{' + '.join(kinds)}: {self.count} views" if kinds else "1 view"


ONE_VIEW = TestViews()  # the image alone: one forward pass


def check_views_fit(views: TestViews, ckpt: Mapping[str, Any]) -> None:
    """Ten crops are crops of a larger photo: a model of small images (whole images) has none."""
    if views.ten_crop and (ckpt.get("preprocess") or {}).get("pipeline") != "photos":
        raise ResnetlabError(TEN_CROP_NEEDS_PHOTOS)


def translations(shift: int) -> list[tuple[int, int]]:
    """Every (down, right) move of at most ``shift`` pixels on each axis, (0, 0) first: (2 shift + 1)^2."""
    check_shift(shift)
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


def view_averaged_logits(model: nn.Module, images: torch.Tensor, views: TestViews = ONE_VIEW, *,
                         fill: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Logits averaged with equal weights over test-time ``views``: the image (and its mirror image
    with ``views.flip``); with ``views.shift`` > 0, every translation by up to that many pixels on each axis.

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
    if views.shift >= min(height, width):
        raise ResnetlabError(f"a test-time shift of {views.shift} pixels needs images larger than {height}x{width}")
    moves = translations(views.shift)
    total = None
    for down, right in moves:
        view = translated(images, down, right, fill)
        logits = model(view).float()
        if views.flip:
            logits = logits + model(view.flip(3)).float()
        total = logits if total is None else total + logits
    return total / (len(moves) * (2 if views.flip else 1))  # the passes made here (ten crops come as 5-D images)
