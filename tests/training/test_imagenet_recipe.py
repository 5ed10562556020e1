"""The paper's ImageNet recipe runs a few iterations on a generated folder, streamed or cached."""

from __future__ import annotations

import json

import pytest
import yaml

from resnetlab.cli import main
from resnetlab.training import resolve_config
from tests.builders import make_photo_folder

pytestmark = pytest.mark.usefixtures("data_cache")  # each test its own image-folder cache


def test_recipe_values_are_the_papers() -> None:
    config = resolve_config("imagenet", overrides={"model": "resnet101"})
    assert (config.optimizer, config.lr, config.momentum, config.weight_decay, config.batch_size) == ("sgd", 0.1, 0.9, 1e-4, 256)
    assert (config.epochs, config.schedule, config.schedule_unit, config.milestones) == (90, "multistep", "epochs", [30.0, 60.0])
    assert config.test_time_ten_crop and config.image_size == 224 and config.precision == "auto" and config.channels_last


@pytest.mark.slow  # real processes or real data: the whole suite runs it, the quick tier does not
def test_a_few_iterations_on_a_generated_folder(tmp_path, capsys) -> None:
    folder = make_photo_folder(tmp_path / "imagenet", classes=("n01440764", "n01443537", "n01484850"), per_class=4)
    out = tmp_path / "run"
    code = main(["train", "--recipe", "imagenet", "--model", "resnet18", "--dataset", "folder", "--data-dir", str(folder),
                 "--batch-size", "4", "--image-size", "32", "--max-iters", "3", "--stream", "--workers", "1", "--out", str(out),
                 "--quiet", "--device", "cpu"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["iterations"] == 3 and summary["recipe"] == "imagenet" and len(summary["classes"]) == 3
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["stream"] is True and config["normalization"] == "dataset"
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[-1].split(",")[-1] == "10"  # the final evaluation averaged the ten crops
    assert "test accuracy" in capsys.readouterr().out
