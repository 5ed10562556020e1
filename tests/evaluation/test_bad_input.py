"""Every kind of bad input is one clear line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from resnetlab.cli import main
from resnetlab.models import create_model
from tests.builders import write_image


def _not_an_image(tmp: Path, ckpt: Path) -> list[str]:
    (tmp / "fake.jpg").write_text("this is text")
    return ["predict", str(ckpt), str(tmp / "fake.jpg"), "--device", "cpu"]


def _empty_folder(tmp: Path, ckpt: Path) -> list[str]:
    (tmp / "empty").mkdir()
    (tmp / "empty" / "readme.txt").write_text("no images here")
    return ["predict", str(ckpt), str(tmp / "empty"), "--device", "cpu"]


def _missing_image(tmp: Path, ckpt: Path) -> list[str]:
    return ["predict", str(ckpt), str(tmp / "nope.png"), "--device", "cpu"]


def _fifo_as_an_image(tmp: Path, ckpt: Path) -> list[str]:
    os.mkfifo(tmp / "pipe.jpg")  # reading it would block for ever
    return ["predict", str(ckpt), str(tmp / "pipe.jpg")]


def _fifo_as_a_checkpoint(tmp: Path, ckpt: Path) -> list[str]:
    os.mkfifo(tmp / "pipe.pt")
    return ["predict", str(tmp / "pipe.pt"), str(write_image(tmp / "a.png"))]


def _broken_link_as_an_image(tmp: Path, ckpt: Path) -> list[str]:
    os.symlink(tmp / "gone.png", tmp / "link.png")
    return ["predict", str(ckpt), str(tmp / "link.png")]


def _missing_checkpoint(tmp: Path, ckpt: Path) -> list[str]:
    return ["predict", str(tmp / "nope.pt"), str(write_image(tmp / "a.png"))]


def _pickle_not_checkpoint(tmp: Path, ckpt: Path) -> list[str]:
    torch.save({"args": argparse.Namespace(lr=0.1)}, tmp / "evil.pt")  # arbitrary Python objects
    return ["predict", str(tmp / "evil.pt"), str(write_image(tmp / "a.png"))]


def _state_dict_not_checkpoint(tmp: Path, ckpt: Path) -> list[str]:
    torch.save(create_model("resnet20").state_dict(), tmp / "weights.pth")
    return ["export", str(tmp / "weights.pth"), "--out", str(tmp / "m.onnx")]


def _checkpoint_of_another_architecture(tmp: Path, ckpt: Path) -> list[str]:
    payload = torch.load(ckpt, weights_only=True)
    payload["state_dict"] = create_model("resnet32", num_classes=3).state_dict()  # says resnet20, holds resnet32
    torch.save(payload, tmp / "mixed.pt")
    return ["predict", str(tmp / "mixed.pt"), str(write_image(tmp / "a.png"))]


def _dataset_of_another_class_count(tmp: Path, ckpt: Path) -> list[str]:
    for split in ("train", "test"):
        for cls in ("left", "right"):
            write_image(tmp / "two" / split / cls / "0.png")
    return ["eval", str(ckpt), "--dataset", "folder", "--data-dir", str(tmp / "two"), "--out", str(tmp / "ev")]


def _weights_for_the_wrong_model(tmp: Path, ckpt: Path) -> list[str]:
    with torch.device("meta"):
        shapes = create_model("resnet50", num_classes=1000).state_dict()
    torch.save({k: torch.zeros(v.shape, dtype=v.dtype) for k, v in shapes.items()}, tmp / "resnet50.pth")
    return ["finetune", "--init-from", str(tmp / "resnet50.pth"), "--model", "resnet20", "--data-dir", str(tmp), "--out", str(tmp / "run")]


def _truncated_file(tmp: Path, ckpt: Path) -> list[str]:
    (tmp / "cut.pt").write_bytes(ckpt.read_bytes()[:1000])
    return ["eval", str(tmp / "cut.pt")]


def _image_passed_as_checkpoint(tmp: Path, ckpt: Path) -> list[str]:
    return ["eval", str(write_image(tmp / "cat.jpg"))]


def _negative_test_time_shift(tmp: Path, ckpt: Path) -> list[str]:
    return ["eval", str(ckpt), "--test-time-shift", "-1"]


def _val_split_without_one(tmp: Path, ckpt: Path) -> list[str]:
    return ["eval", str(ckpt), "--split", "val"]


CASES: dict[str, tuple[Callable[[Path, Path], list[str]], str]] = {
    "not an image": (_not_an_image, "is not an image"),
    "empty folder": (_empty_folder, "holds no images"),
    "missing image": (_missing_image, "does not exist"),
    "missing checkpoint": (_missing_checkpoint, "does not exist"),
    "FIFO given as an image": (_fifo_as_an_image, r"pipe\.jpg is a FIFO, not a regular file: pass an image file or a folder of images"),
    "FIFO given as a checkpoint": (_fifo_as_a_checkpoint, r"checkpoint .*pipe\.pt is a FIFO, not a regular file"),
    "broken link given as an image": (_broken_link_as_an_image, r"link\.png is a broken link \(to .*gone\.png\)"),
    "pickle that is not a checkpoint": (_pickle_not_checkpoint, "weights-only loading refuses"),
    "state dict instead of a checkpoint": (_state_dict_not_checkpoint, "not a resnetlab checkpoint"),
    "checkpoint of another architecture": (_checkpoint_of_another_architecture, "do not fit model resnet20"),
    "dataset of another class count": (_dataset_of_another_class_count, "trained on 3 classes .* has 2"),
    "weights for the wrong model": (_weights_for_the_wrong_model, "do not fit the backbone of resnet20.*resnet50"),
    "truncated file": (_truncated_file, "not a readable PyTorch file"),
    "no validation split": (_val_split_without_one, "without a validation split"),
    "image passed as a checkpoint": (_image_passed_as_checkpoint, "cat.jpg is not a PyTorch file"),
    "negative test-time shift": (_negative_test_time_shift, "shift must be a whole number of pixels >= 0, got -1"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_exit_2(case: str, tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture) -> None:
    build, message = CASES[case]
    argv = build(tmp_path, tiny_checkpoint)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("resnetlab: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert re.search(message, err), err


@pytest.mark.slow  # a real process: the whole suite runs it, the quick tier does not
def test_a_real_process_exits_2_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "resnetlab", "predict", str(tmp_path / "missing.pt"), str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2
    assert proc.stderr.startswith("resnetlab: error: checkpoint") and "Traceback" not in proc.stderr
