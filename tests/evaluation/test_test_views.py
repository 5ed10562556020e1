"""Test-time view averaging: the views and their weights, checked on a net that reads one pixel."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from resnetlab.data import TensorLoader
from resnetlab.errors import ResnetlabError
from resnetlab.evaluation.logits import collect_logits, loader_logits
from resnetlab.evaluation.test_views import translated, translations, view_averaged_logits, view_count
from tests.conftest import make_tiny_bundle


class OnePixel(nn.Module):
    """Logits = the value of pixel (1, 1) of channel 0: each view's contribution is readable."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images[:, 0, 1, 1].unsqueeze(1)


class Corner(nn.Module):
    """Logits = the value of the top-left pixel of channel 0."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images[:, 0, 0, 0].unsqueeze(1)


def squares() -> torch.Tensor:
    """A 4x4 image whose pixel (r, c) holds (4r + c)^2, so no two shifted views read the same value."""
    return (torch.arange(16.0) ** 2).reshape(1, 1, 4, 4)


def test_no_views_is_the_plain_forward_pass() -> None:
    assert view_averaged_logits(OnePixel(), squares(), flip=False).item() == 25.0  # pixel (1, 1) = 5^2


def test_flip_averages_the_mirror_image() -> None:
    # mirrored, pixel (1, 1) holds the original (1, 2) = 6^2
    assert view_averaged_logits(OnePixel(), squares(), flip=True).item() == 0.5 * (25 + 36)


def test_translated_moves_the_content_and_fills_the_uncovered_border() -> None:
    image = squares()
    moved = translated(image, 1, -1, fill=-7.0)  # one pixel down, one pixel left
    assert torch.equal(moved[0, 0, 1:, :3], image[0, 0, :3, 1:])  # the content, moved
    assert (moved[0, 0, 0, :] == -7).all() and (moved[0, 0, :, 3] == -7).all()  # the uncovered top row and right column


def test_translations_are_every_move_of_up_to_shift_pixels_the_image_first() -> None:
    assert translations(0) == [(0, 0)]
    moves = translations(1)
    assert moves[0] == (0, 0) and len(moves) == 9 and set(moves) == {(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    assert view_count(flip=True, shift=2) == 50 and view_count(flip=False, shift=0) == 1


def test_shift_averages_every_move_with_equal_weights_and_black_borders() -> None:
    # pixel (1, 1) of the 9 views moved by up to one pixel reads the original pixels (0..2, 0..2): values
    # (4r + c)^2; none of them is a border, so the fill does not matter for this pixel
    expected = sum((4 * r + c) ** 2 for r in range(3) for c in range(3)) / 9
    assert view_averaged_logits(OnePixel(), squares(), flip=False, shift=1, fill=-1.0).item() == pytest.approx(expected)
    # 2 pixels down-right, pixel (1, 1) reads the border: the fill, not a reflected pixel
    corner = translated(squares(), 2, 2, fill=-1.0)
    assert corner[0, 0, 1, 1].item() == -1.0


def test_a_shift_as_large_as_the_image_is_refused_in_words() -> None:
    with pytest.raises(ResnetlabError, match="shift of 4 pixels needs images larger than 4x4"):
        view_averaged_logits(OnePixel(), squares(), flip=False, shift=4)


def test_collect_logits_passes_the_views_and_fill_through_batch_by_batch() -> None:
    images = torch.cat([squares(), -squares()])
    batches = [(images[:1], torch.tensor([0])), (images[1:], torch.tensor([1]))]
    logits, labels = collect_logits(OnePixel(), batches, tta=True, shift=2, fill=-3.0)
    expected = view_averaged_logits(OnePixel(), images, flip=True, shift=2, fill=-3.0)
    assert torch.equal(logits, expected) and labels.tolist() == [0, 1]
    # the 2-pixel moves read the border: the fill changes the average
    assert not torch.equal(logits, view_averaged_logits(OnePixel(), images, flip=True, shift=2, fill=0.0))


def test_loader_logits_fills_with_the_loaders_black_and_keeps_quiet_off_a_terminal(capsys: pytest.CaptureFixture) -> None:
    data = make_tiny_bundle()
    loader = TensorLoader(data.test, 5, mean=data.mean, std=data.std)
    model = Corner()  # reads the border of every view moved down or right
    logits, labels = loader_logits(model, loader, tta=True, shift=1, progress="evaluating")
    expected, want = collect_logits(model, loader.batches(0), tta=True, shift=1, fill=loader.padding_value)
    assert torch.equal(logits, expected) and torch.equal(labels, want) and len(labels) == len(data.test.labels)
    assert not torch.equal(logits, collect_logits(model, loader.batches(0), tta=True, shift=1, fill=0.0)[0])
    assert capsys.readouterr().err == ""  # the bar only shows on a terminal
