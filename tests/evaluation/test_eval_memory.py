"""``eval`` checks its batch against the device's memory as training does: a --batch-size whose
forward pass would not fit is refused naming it; without one, the default batch is halved until it fits."""

from __future__ import annotations

from pathlib import Path

import pytest

import resnetlab.memory as memory_module
from resnetlab.cli import main
from resnetlab.errors import ResnetlabError
from resnetlab.evaluation import evaluate
from resnetlab.models.complexity import memory_needed
from tests.builders import make_checkpoint, make_image_folder

SHAPE = (3, 16, 16)  # make_checkpoint's input size


def inference_bytes(batch: int) -> int:
    return memory_needed("resnet20", None, SHAPE, batch, training=False, num_classes=3)


@pytest.fixture
def tiny_eval(tmp_path: Path) -> tuple[Path, Path]:
    """(a resnet20 checkpoint of 3 classes at 16x16, an image folder of those classes: 12 test images)."""
    return make_checkpoint(tmp_path / "run" / "tiny.pt"), make_image_folder(tmp_path / "data", size=16)


def budget(monkeypatch: pytest.MonkeyPatch, nbytes: int) -> None:
    monkeypatch.setattr(memory_module, "machine_memory", lambda: nbytes)


def test_a_batch_size_whose_forward_pass_does_not_fit_is_refused_naming_it(tiny_eval, monkeypatch) -> None:
    checkpoint, data = tiny_eval
    budget(monkeypatch, inference_bytes(40))
    with pytest.raises(ResnetlabError, match=r"^batch_size=64 \(a forward pass of resnet20 on 64 x 3x16x16\) needs "
                                             r"[\d.]+ GiB of memory, more than the [\d.]+ GiB this machine has: lower batch_size$"):
        evaluate(checkpoint, dataset="folder", data_dir=data, device="cpu", batch_size=64)
    assert evaluate(checkpoint, dataset="folder", data_dir=data, device="cpu", batch_size=32)["batch_size"] == 32


def test_the_cli_refusal_is_one_line_and_exit_2(tiny_eval, monkeypatch, capsys) -> None:
    checkpoint, data = tiny_eval
    budget(monkeypatch, inference_bytes(40))
    argv = ["eval", str(checkpoint), "--dataset", "folder", "--data-dir", str(data), "--device", "cpu", "--batch-size", "64"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("resnetlab: error: --batch-size 64 ") and err.endswith(": lower --batch-size\n")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_without_a_batch_size_the_default_is_halved_until_it_fits(tiny_eval, monkeypatch) -> None:
    checkpoint, data = tiny_eval
    roomy = evaluate(checkpoint, dataset="folder", data_dir=data, device="cpu")
    assert roomy["batch_size"] == 256  # small images on a CPU
    budget(monkeypatch, inference_bytes(40))  # 32 fits, 64 does not
    tight = evaluate(checkpoint, dataset="folder", data_dir=data, device="cpu")
    assert tight["batch_size"] == 32
    assert (tight["top1"], tight["n"], tight["confusion"]) == (roomy["top1"], roomy["n"], roomy["confusion"])


def test_not_even_one_image_fitting_is_refused(tiny_eval, monkeypatch) -> None:
    checkpoint, data = tiny_eval
    budget(monkeypatch, inference_bytes(1) - 1)
    with pytest.raises(ResnetlabError, match=r"^evaluating one image \(a forward pass of resnet20 on 1 x 3x16x16\) needs .*: "
                                             r"evaluate on a device with more memory \(device=DEVICE\)$"):
        evaluate(checkpoint, dataset="folder", data_dir=data, device="cpu")
