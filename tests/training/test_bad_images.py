"""Training on a user's image folder that holds a broken file (named and refused, or skipped on
request) or images too small for the model at their native size (refused, naming --image-size)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from resnetlab.cli import main
from resnetlab.errors import ResnetlabError
from resnetlab.training import resolve_config, train
from tests.builders import make_image_folder


def make_folder(root: Path) -> Path:
    make_image_folder(root, classes=("cats", "dogs"), per_class={"train": 6, "test": 2})
    (root / "train" / "cats" / "broken.png").write_bytes(b"not an image at all")
    return root


def config(tmp_path: Path, **extra):
    return resolve_config(overrides={"model": "resnet20", "dataset": "folder", "data_dir": str(tmp_path / "data"),
                                     "out": str(tmp_path / "run"), "epochs": 1, "max_iters": None,
                                     "batch_size": 4, "quiet": True, "device": "cpu", **extra})


def test_a_broken_image_is_named_and_the_run_refused(tmp_path: Path) -> None:
    make_folder(tmp_path / "data")
    with pytest.raises(ResnetlabError) as caught:  # the command line's spelling of the options
        train(config(tmp_path))
    assert re.search(r"broken\.png.*--skip-bad-images", caught.value.for_command_line())


def test_skip_bad_images_trains_on_the_readable_ones_and_the_log_names_the_skipped(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_folder(tmp_path / "data")
    summary = train(config(tmp_path, skip_bad_images=True))
    assert summary["iterations"] == 12 // 4  # the 12 readable training images, batch 4
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["final"]["test_acc"] is not None
    logged = [line for line in (tmp_path / "run" / "train.log").read_text().splitlines() if "unreadable" in line]
    assert len(logged) == 1 and "skipped 1 unreadable image(s)" in logged[0] and "broken.png" in logged[0]
    out, err = capsys.readouterr()
    assert [line for line in out.splitlines() if "unreadable" in line] == [logged[0].split(" ", 2)[2]]  # once, as in the log
    assert "unreadable" not in err


def test_images_below_the_models_smallest_at_their_native_size_are_refused_naming_the_folder(tmp_path: Path) -> None:
    data = make_image_folder(tmp_path / "data", classes=("cats", "dogs"), per_class={"train": 6, "test": 2}, size=2)
    expected = (f"the images of {data.resolve()} are 2x2, below the smallest image resnet20 takes, 4 pixels "
                "(its layers shrink the image 4 times): pass image_size=4 (or more) to resize them")
    with pytest.raises(ResnetlabError) as caught:
        train(config(tmp_path))
    assert str(caught.value) == expected
    assert not (tmp_path / "run" / "config.yaml").exists()  # refused before the run started
    summary = train(config(tmp_path, image_size=4))  # the advice works
    assert summary["iterations"] == 12 // 4


def test_the_cli_refuses_a_folder_too_small_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = make_image_folder(tmp_path / "data", classes=("cats", "dogs"), per_class={"train": 6, "test": 2}, size=16)
    argv = ["train", "--model", "resnet18", "--dataset", "folder", "--data-dir", str(data), "--out", str(tmp_path / "run"),
            "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == (f"resnetlab: error: the images of {data.resolve()} are 16x16, below the smallest image resnet18 takes, "
                   "32 pixels (its layers shrink the image 32 times): pass --image-size 32 (or more) to resize them\n")
