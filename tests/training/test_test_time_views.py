"""Test-time view averaging: the views and their weights, checked on a net that reads one pixel."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from resnetlab.errors import ResnetlabError
from resnetlab.training.engine import collect_logits, view_averaged_logits


class OnePixel(nn.Module):
    """Logits = the value of pixel (1, 1) of channel 0: each view's contribution is readable."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images[:, 0, 1, 1].unsqueeze(1)


def squares() -> torch.Tensor:
    """A 4x4 image whose pixel (r, c) holds (4r + c)^2, so no two shifted views read the same value."""
    return (torch.arange(16.0) ** 2).reshape(1, 1, 4, 4)


def test_no_views_is_the_plain_forward_pass() -> None:
    assert view_averaged_logits(OnePixel(), squares(), flip=False).item() == 25.0  # pixel (1, 1) = 5^2


def test_flip_averages_the_mirror_image() -> None:
    # mirrored, pixel (1, 1) holds the original (1, 2) = 6^2
    assert view_averaged_logits(OnePixel(), squares(), flip=True).item() == 0.5 * (25 + 36)


def test_shift_gives_half_the_weight_to_the_two_translated_views() -> None:
    # moved 1 pixel down-right, (1, 1) shows the original (0, 0) = 0; moved up-left, (2, 2) = 10^2
    assert view_averaged_logits(OnePixel(), squares(), flip=False, shift=1).item() == 0.5 * 25 + 0.25 * (0 + 100)


def test_shifted_views_keep_the_image_size_and_collect_logits_passes_them() -> None:
    seen: list[tuple[int, ...]] = []
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    net.register_forward_pre_hook(lambda _, args: seen.append(tuple(args[0].shape)))
    batches = [(squares().repeat(2, 1, 1, 1), torch.tensor([0, 1]))]
    logits, labels = collect_logits(net, batches, tta=True, shift=1)
    assert logits.shape == (2, 3) and labels.tolist() == [0, 1]
    assert seen == [(2, 1, 4, 4)] * 6  # image, mirror, and both for each of the two shifts


def test_a_shift_as_large_as_the_image_is_refused_in_words() -> None:
    with pytest.raises(ResnetlabError, match="shift of 4 pixels needs images larger than 4x4"):
        view_averaged_logits(OnePixel(), squares(), flip=False, shift=4)
