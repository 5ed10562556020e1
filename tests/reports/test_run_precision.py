"""A bf16 run is evaluated in bf16 by eval and report (so its own accuracy comes out again), and
in exact fp32 when asked; predict runs in fp32 unless asked (as for weights without a run);
export stays fp32."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from resnetlab.cli import main
from resnetlab.evaluation import Predictor, evaluate
from resnetlab.reports.predictions import DatasetCache, predict_test_split
from resnetlab.reports.reading import read_runs
from resnetlab.training import resolve_config, train
from tests.builders import one_thread, tiny_train_overrides


@pytest.fixture(scope="module")
def bf16_run(tiny_image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("bf16") / "run"
    overrides = {**tiny_train_overrides(tiny_image_folder), "precision": "bf16", "test_time_flip": True, "out": str(out)}
    with one_thread():
        summary = train(resolve_config("paper", overrides=overrides))
    return out, summary


def test_eval_uses_the_runs_precision_and_fp32_when_asked(bf16_run, tmp_path, capsys):
    run, summary = bf16_run
    with one_thread():
        own = evaluate(run, out=tmp_path, device="cpu")
        assert main(["eval", str(run), "--precision", "fp32", "--json", "--out", str(tmp_path), "--device", "cpu"]) == 0
    exact = json.loads(capsys.readouterr().out)
    assert own["precision"] == "bf16" and exact["precision"] == "fp32"
    assert summary["precision"] == "bf16" and summary["final"]["test_acc"] > 0.5  # learnt something (3 classes)
    assert own["top1"] == summary["final"]["test_acc"]  # the run's own figure, to the last image
    assert own["loss"] == pytest.approx(summary["final"]["test_loss"], rel=1e-6)
    assert exact["loss"] != own["loss"]  # fp32 is other arithmetic


def test_report_predictions_use_the_runs_precision(bf16_run, tmp_path):
    run, summary = bf16_run
    with one_thread():
        own = predict_test_split(read_runs([run])[0], DatasetCache(), device="cpu")
        exact = predict_test_split(read_runs([run])[0], DatasetCache(), precision="fp32", device="cpu")
    assert own.confusion.trace().item() / own.confusion.sum().item() == summary["final"]["test_acc"]
    exact_eval = evaluate(run, precision="fp32", out=tmp_path, device="cpu")
    assert exact.confusion.tolist() == exact_eval["confusion"]


def test_the_report_says_what_the_run_trained_in(bf16_run, tmp_path):
    from resnetlab.reports import report

    run, _ = bf16_run
    with one_thread():
        page = report([run], tmp_path / "report", checkpoints=False).read_text()
    assert "<th>precision</th><td>bf16</td>" in page.replace("\n", "").replace(" ", "")


def test_predict_runs_in_fp32_and_in_the_runs_precision_when_asked(bf16_run):
    run, _ = bf16_run
    own, exact = Predictor(run, precision=None, device="cpu"), Predictor(run, device="cpu")
    assert (own.precision, exact.precision) == ("bf16", "fp32")
    images = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            in_bf16 = ((own.model(images).float() + own.model(images.flip(3)).float()) / 2).softmax(1)
        in_fp32 = ((exact.model(images) + exact.model(images.flip(3))) / 2).softmax(1)
    assert torch.equal(own.probabilities(images), in_bf16)
    assert torch.allclose(exact.probabilities(images), in_fp32, atol=1e-6)
    assert not torch.equal(own.probabilities(images), exact.probabilities(images))


def test_export_stays_fp32(bf16_run, tmp_path):
    run, _ = bf16_run
    out = tmp_path / "model.pt2"
    assert main(["export", str(run), "--format", "exported-program", "--out", str(out)]) == 0
    program = torch.export.load(str(out))
    assert {p.dtype for p in program.state_dict.values() if p.is_floating_point()} == {torch.float32}
