"""One device resolution for every command: eval, predict and report take --device auto (their
default, as training's), refuse an absent GPU in one line, and run in the layout training used."""

from __future__ import annotations

import json

import pytest
import torch

from resnetlab.checkpoint import load_checkpoint
from resnetlab.cli import build_parser, main
from resnetlab.devices import resolve_device
from resnetlab.evaluation import Predictor
from resnetlab.evaluation.evaluate import model_and_loader
from resnetlab.training import TrainConfig
from tests.builders import fake_cuda, make_checkpoint, make_tiny_bundle, write_image

pytestmark = pytest.mark.gpu_emulated


@pytest.mark.parametrize("argv", [["eval", "run"], ["predict", "run", "a.png"], ["report", "run", "--out", "r"]])
def test_every_command_defaults_to_auto_as_training_does(argv) -> None:
    assert build_parser().parse_args(argv).device == "auto" == TrainConfig().device
    with fake_cuda():
        assert resolve_device("auto") == torch.device("cuda")


def test_predict_accepts_device_auto(tmp_path, capsys) -> None:
    ckpt = make_checkpoint(tmp_path / "c.pt")
    assert main(["predict", str(ckpt), str(write_image(tmp_path / "a.png")), "--device", "auto", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)[0]["predictions"]) == 3


def test_an_absent_gpu_is_one_line_not_a_traceback(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # absent here even on a GPU machine
    ckpt = make_checkpoint(tmp_path / "c.pt")
    assert main(["predict", str(ckpt), str(write_image(tmp_path / "a.png")), "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def channels_last_run(tmp_path) -> dict:
    """A checkpoint of a run that trained channels-last, for the tiny bundle's 8x8 images."""
    path = make_checkpoint(tmp_path / "c.pt", input_size=(3, 8, 8), classes=["class0", "class1", "class2"],
                           config={"channels_last": True})
    return load_checkpoint(path)


def test_evaluation_resolves_auto(tmp_path) -> None:
    model, loader = model_and_loader(channels_last_run(tmp_path), make_tiny_bundle().test, 8, "auto")
    assert loader.device.type == resolve_device("auto").type == next(model.parameters()).device.type  # cuda, cuda:0 on a GPU


def test_predictor_runs_in_the_runs_layout_and_gives_evals_logits_to_the_last_bit(tmp_path) -> None:
    ckpt = channels_last_run(tmp_path)
    model, loader = model_and_loader(ckpt, make_tiny_bundle().test, 24, "cpu")
    images, _ = next(loader.batches(0))
    predictor = Predictor(ckpt, device="cpu")  # eval's logits above were computed on the CPU
    assert predictor.model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = model.eval()(images).softmax(1)
    assert torch.equal(predictor.probabilities(images.contiguous()), expected)
