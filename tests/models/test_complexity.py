"""Multiply-accumulates against the paper's Table 1, and the inspection commands."""

from __future__ import annotations

import json

import pytest
import torch

from resnetlab.cli import main
from resnetlab.models import create_model
from resnetlab.models.complexity import count_macs, count_parameters, layer_summary
from resnetlab.models.paper import PAPER_IMAGENET_GMACS


@pytest.mark.parametrize("name,paper_gmacs", PAPER_IMAGENET_GMACS.items())
def test_table1_multiply_adds_within_3_percent(name: str, paper_gmacs: float) -> None:
    options = {"stride_in_1x1": True} if name in ("resnet50", "resnet101", "resnet152") else {}
    with torch.device("meta"):
        model = create_model(name, num_classes=1000, **options)
    assert count_macs(model, (3, 224, 224)) / 1e9 == pytest.approx(paper_gmacs, rel=0.03)


def test_resnet20_costs_about_41_million_macs() -> None:
    assert count_macs(create_model("resnet20"), (3, 32, 32)) / 1e6 == pytest.approx(41, rel=0.02)


def test_layer_summary_adds_up() -> None:
    model = create_model("resnet20")
    rows = layer_summary(model, (3, 32, 32))
    assert rows[0].name == "conv1" and rows[0].output_shape == [1, 16, 32, 32]
    assert rows[-1].name == "fc" and rows[-1].output_shape == [1, 10]
    assert sum(r.params for r in rows) == count_parameters(model)
    assert sum(r.macs for r in rows) == count_macs(model, (3, 32, 32))


def test_summary_json_for_mnist_input(capsys: pytest.CaptureFixture) -> None:
    assert main(["summary", "resnet20", "--input-size", "1", "28", "28", "--num-classes", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"] == 269_722 - 2 * 16 * 9 - 5 * 65  # 1 input channel, 5 classes
    assert out["layers"][-1]["output_shape"] == [1, 5]


def test_models_json_lists_params_and_macs(capsys: pytest.CaptureFixture) -> None:
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["resnet110"]["params"] == 1_727_962 and rows["resnet110"]["paper_cifar10_error"] == 6.43
    assert rows["resnet18"]["macs"] == pytest.approx(1.82e9, rel=0.01)


def test_unknown_model_suggests_names_without_traceback(capsys: pytest.CaptureFixture) -> None:
    assert main(["summary", "resnt56"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown model 'resnt56'" in err and "resnet56" in err


def test_bad_option_combination_is_one_line(capsys: pytest.CaptureFixture) -> None:
    assert main(["summary", "resnet50", "--model-option", "shortcut=A"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "basic blocks" in err


def test_an_empty_input_size_is_one_line(capsys: pytest.CaptureFixture) -> None:
    assert main(["summary", "resnet20", "--input-size", "3", "0", "32"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "three positive whole numbers C H W, got 3 0 32" in err
