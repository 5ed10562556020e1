"""Test-time view averaging: the views and their weights, checked on a net that reads one pixel."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from resnetlab.cli import build_parser
from resnetlab.data import TensorLoader
from resnetlab.errors import ResnetlabError
from resnetlab.evaluation.logits import collect_logits, loader_logits
from resnetlab.evaluation.view_averaging import TestViews, translated, translations, view_averaged_logits
from tests.builders import make_tiny_bundle


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
    assert view_averaged_logits(OnePixel(), squares()).item() == 25.0  # pixel (1, 1) = 5^2


def test_flip_averages_the_mirror_image() -> None:
    # mirrored, pixel (1, 1) holds the original (1, 2) = 6^2
    assert view_averaged_logits(OnePixel(), squares(), TestViews(flip=True)).item() == 0.5 * (25 + 36)


def test_translated_moves_the_content_and_fills_the_uncovered_border() -> None:
    image = squares()
    moved = translated(image, 1, -1, fill=-7.0)  # one pixel down, one pixel left
    assert torch.equal(moved[0, 0, 1:, :3], image[0, 0, :3, 1:])  # the content, moved
    assert (moved[0, 0, 0, :] == -7).all() and (moved[0, 0, :, 3] == -7).all()  # the uncovered top row and right column


def test_translations_are_every_move_of_up_to_shift_pixels_the_image_first() -> None:
    assert translations(0) == [(0, 0)]
    moves = translations(1)
    assert moves[0] == (0, 0) and len(moves) == 9 and set(moves) == {(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    assert TestViews(flip=True, shift=2).count == 50 and TestViews().count == 1 and TestViews(flip=True, ten_crop=True).count == 10


def test_shift_averages_every_move_with_equal_weights_and_black_borders() -> None:
    # pixel (1, 1) of the 9 views moved by up to one pixel reads the original pixels (0..2, 0..2): values
    # (4r + c)^2; none of them is a border, so the fill does not matter for this pixel
    expected = sum((4 * r + c) ** 2 for r in range(3) for c in range(3)) / 9
    assert view_averaged_logits(OnePixel(), squares(), TestViews(shift=1), fill=-1.0).item() == pytest.approx(expected)
    # 2 pixels down-right, pixel (1, 1) reads the border: the fill, not a reflected pixel
    corner = translated(squares(), 2, 2, fill=-1.0)
    assert corner[0, 0, 1, 1].item() == -1.0


def test_a_shift_as_large_as_the_image_is_refused_in_words() -> None:
    with pytest.raises(ResnetlabError, match="shift of 4 pixels needs images larger than 4x4"):
        view_averaged_logits(OnePixel(), squares(), TestViews(shift=4))


def test_collect_logits_passes_the_views_and_fill_through_batch_by_batch() -> None:
    images = torch.cat([squares(), -squares()])
    batches = [(images[:1], torch.tensor([0])), (images[1:], torch.tensor([1]))]
    views = TestViews(flip=True, shift=2)
    logits, labels = collect_logits(OnePixel(), batches, views, fill=-3.0)
    expected = view_averaged_logits(OnePixel(), images, views, fill=-3.0)
    assert torch.equal(logits, expected) and labels.tolist() == [0, 1]
    # the 2-pixel moves read the border: the fill changes the average
    assert not torch.equal(logits, view_averaged_logits(OnePixel(), images, views, fill=0.0))


def test_loader_logits_fills_with_the_loaders_black_and_keeps_quiet_off_a_terminal(capsys: pytest.CaptureFixture) -> None:
    data = make_tiny_bundle()
    loader = TensorLoader(data.test, 5, mean=data.mean, std=data.std)
    model = Corner()  # reads the border of every view moved down or right
    views = TestViews(flip=True, shift=1)
    logits, labels = loader_logits(model, loader, views, progress="evaluating")
    expected, want = collect_logits(model, loader.batches(0), views, fill=loader.padding_value)
    assert torch.equal(logits, expected) and torch.equal(labels, want) and len(labels) == len(data.test.labels)
    assert not torch.equal(logits, collect_logits(model, loader.batches(0), views, fill=0.0)[0])
    assert capsys.readouterr().err == ""  # the bar only shows on a terminal


def test_test_views_refuse_a_bad_shift_when_made() -> None:
    for shift in (-1, 1.5, True):
        with pytest.raises(ResnetlabError, match=f"shift must be a whole number of pixels >= 0, got {shift!r}"):
            TestViews(shift=shift)


def test_test_views_come_from_a_runs_config_older_runs_included() -> None:
    config = {"test_time_flip": True, "test_time_shift": 1, "test_time_ten_crop": False}
    assert TestViews.from_config(config) == TestViews(flip=True, shift=1)
    assert TestViews.from_config({"test_time_flip": True}) == TestViews(flip=True)  # before shifts and ten crops
    assert TestViews.from_config({}) == TestViews()


def test_a_checkpoints_own_views_come_before_its_config() -> None:
    config = {"test_time_flip": True, "test_time_shift": 2}
    assert TestViews.from_checkpoint({"config": config}) == TestViews(flip=True, shift=2)  # an older checkpoint
    saved = {"config": config, "test_views": {"flip": False, "shift": 1, "ten_crop": True}}
    assert TestViews.from_checkpoint(saved) == TestViews(shift=1, ten_crop=True)
    with pytest.raises(ResnetlabError, match="test_views is 3"):
        TestViews.from_checkpoint({"test_views": 3})


def test_overrides_replace_only_what_is_given_and_plain_values_come_out() -> None:
    run = TestViews(flip=True, shift=1)
    assert run.overridden() == run and run.overridden(flip=False, shift=None) == TestViews(shift=1)
    assert run.overridden(shift=0, ten_crop=True).as_dict() == {"flip": True, "shift": 0, "ten_crop": True}
    with pytest.raises(ResnetlabError, match="got -1"):
        run.overridden(shift=-1)
    assert [v.describe() for v in (TestViews(), run, TestViews(flip=True, ten_crop=True))] == [
        "1 view", "flip + 1-pixel shift: 18 views", "ten crops: 10 views"]


@pytest.mark.parametrize("command", ["eval", "predict"])
def test_the_old_view_flags_still_work_unshown(command: str, capsys: pytest.CaptureFixture) -> None:
    """Scripts written with --tta / --tta-shift / --ten-crop keep working, with a note naming the new spelling;
    help shows only the config fields' spelling."""
    parser = build_parser()
    head = [command, "runs/r20", *(["cat.jpg"] if command == "predict" else [])]
    old = parser.parse_args([*head, "--tta", "--tta-shift", "2", "--no-ten-crop"])
    new = parser.parse_args([*head, "--test-time-flip", "--test-time-shift", "2", "--no-test-time-ten-crop"])
    assert vars(old) == vars(new) and (new.test_time_flip, new.test_time_shift, new.test_time_ten_crop) == (True, 2, False)
    assert parser.parse_args([*head, "--no-tta"]).test_time_flip is False
    assert capsys.readouterr().err.splitlines() == [
        "resnetlab: --tta is a deprecated spelling: use --test-time-flip",
        "resnetlab: --tta-shift is a deprecated spelling: use --test-time-shift",
        "resnetlab: --no-ten-crop is a deprecated spelling: use --no-test-time-ten-crop",
        "resnetlab: --no-tta is a deprecated spelling: use --no-test-time-flip"]
    given = parser.parse_args(head)
    assert (given.test_time_flip, given.test_time_shift, given.test_time_ten_crop) == (None, None, None)  # as the run did
    with pytest.raises(SystemExit):
        parser.parse_args([command, "--help"])
    shown = capsys.readouterr().out
    assert "--test-time-flip" in shown and "--test-time-ten-crop" in shown
    assert "--tta" not in shown and "--ten-crop" not in shown
