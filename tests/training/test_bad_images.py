"""Training on a user's image folder that holds a broken file: named and refused, or skipped on request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
    with pytest.raises(ResnetlabError, match=r"broken\.png.*--skip-bad-images"):
        train(config(tmp_path))


def test_skip_bad_images_trains_on_the_readable_ones(tmp_path: Path) -> None:
    make_folder(tmp_path / "data")
    summary = train(config(tmp_path, skip_bad_images=True))
    assert summary["iterations"] == 12 // 4  # the 12 readable training images, batch 4
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["final"]["test_acc"] is not None
