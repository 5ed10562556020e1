"""A run's record repeats it: ``train --config RUN/config.yaml --out NEW`` trains the same run again."""

from __future__ import annotations

import csv

import pytest
import yaml

from resnetlab.cli import main
from resnetlab.runs import METRICS_COLUMNS
from tests.builders import make_image_folder, read_json

pytestmark = pytest.mark.usefixtures("data_cache")
TIMINGS = ("epoch_seconds", "images_per_second", "eval_seconds")  # the machine's speed, not the run's numbers


def numbers(run) -> list[dict[str, str]]:
    with (run / "metrics.csv").open(newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMINGS} for row in csv.DictReader(f)]


def test_the_recorded_config_trains_the_same_run_again(tmp_path) -> None:
    data = make_image_folder(tmp_path / "data", per_class=12)
    first, again = tmp_path / "first", tmp_path / "again"
    assert main(["train", "--recipe", "fast", "--epochs", "3", "--batch-size", "8", "--val-split", "0.25", "--lr", "0.05",
                 "--dataset", "folder", "--data-dir", str(data), "--device", "cpu", "--quiet", "--out", str(first)]) == 0
    assert main(["train", "--config", str(first / "config.yaml"), "--out", str(again)]) == 0
    rows = numbers(first)
    assert len(rows) == 3 and set(rows[0]) == set(METRICS_COLUMNS) - set(TIMINGS)
    assert numbers(again) == rows  # every loss, accuracy and lr, to the last digit written
    recorded, repeated = (yaml.safe_load((run / "config.yaml").read_text()) for run in (first, again))
    assert {**recorded, "out": None} == {**repeated, "out": None}  # recipe_changes too
    assert read_json(again / "summary.json")["command"] == f"resnetlab train --config {first / 'config.yaml'} --out {again}"


def test_the_recorded_python_call_trains_the_same_run_again(tmp_path) -> None:
    import resnetlab

    data = make_image_folder(tmp_path / "data", per_class=8)
    first, again = str(tmp_path / "first"), str(tmp_path / "again")
    resnetlab.train(model="resnet20", dataset="folder", data_dir=str(data), epochs=2, batch_size=8, device="cpu", quiet=True,
                    out=first)
    command = read_json(tmp_path / "first" / "summary.json")["command"]
    assert command == (f"resnetlab.train(model='resnet20', dataset='folder', data_dir={str(data)!r}, epochs=2, batch_size=8, "
                       f"device='cpu', quiet=True, out={first!r})")
    eval(command.replace(repr(first), repr(again)), {"resnetlab": resnetlab})  # noqa: S307 (the call a run recorded)
    assert numbers(tmp_path / "again") == numbers(tmp_path / "first")
