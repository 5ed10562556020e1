"""Renamed flags keep their old spelling for a while: the same effect, and a note naming the new one."""

from __future__ import annotations

import pytest

from resnetlab.cli import build_parser


@pytest.mark.parametrize(("argv", "old", "dest", "value", "use"), [
    (["finetune", "--from", "w.pth", "--out", "o"], "--from", "init_from", "w.pth", "--init-from"),
    (["eval", "run", "--tta"], "--tta", "test_time_flip", True, "--test-time-flip"),
    (["eval", "run", "--tta-shift", "2"], "--tta-shift", "test_time_shift", 2, "--test-time-shift"),
    (["predict", "run", "x.jpg", "--ten-crop"], "--ten-crop", "test_time_ten_crop", True, "--test-time-ten-crop"),
    (["summary", "resnet20", "--option", "shortcut=B"], "--option", "option", ["shortcut=B"], "--model-option"),
])
def test_an_old_spelling_does_what_the_new_one_does_and_says_so(argv, old, dest, value, use, capsys) -> None:
    args = build_parser().parse_args(argv)
    assert getattr(args, dest) == value
    assert capsys.readouterr().err.strip() == f"resnetlab: {old} is a deprecated spelling: use {use}"


def test_old_spellings_are_not_shown_in_help() -> None:
    help_text = build_parser()._subparsers._group_actions[0].choices["finetune"].format_help()
    assert "--init-from" in help_text and "--from " not in help_text
