"""A run records its recipe and exactly what was changed from it, however it was changed."""

from __future__ import annotations

import pytest
import yaml

from resnetlab.cli import main
from resnetlab.training import resolve_config
from resnetlab.training.config import describe_recipe, recipe_changes
from tests.builders import make_image_folder, read_json

pytestmark = pytest.mark.usefixtures("data_cache")


def _record(out) -> tuple[dict, dict]:
    return yaml.safe_load((out / "config.yaml").read_text()), read_json(out / "summary.json")


def test_flags_record_exactly_the_fields_that_differ(tmp_path, capsys) -> None:
    data = make_image_folder(tmp_path / "data", per_class=50)
    out = tmp_path / "run"
    assert main(["train", "--optimizer", "sgd", "--lr", "0.05", "--momentum", "0", "--batch-size", "128", "--epochs", "1",
                 "--dataset", "folder", "--data-dir", str(data), "--device", "cpu", "--out", str(out)]) == 0
    config, summary = _record(out)
    changes = {"epochs": 1, "lr": 0.05, "momentum": 0.0}  # sgd and batch 128 are the paper's: no change
    assert config["recipe"] == summary["recipe"] == "paper"
    assert config["recipe_changes"] == summary["recipe_changes"] == changes
    first = capsys.readouterr().out.splitlines()[0]
    assert first == "recipe paper, changed: epochs 1, lr 0.05, momentum 0.0"
    assert (out / "train.log").read_text().splitlines()[0].endswith(first)
    assert summary["command"].startswith("resnetlab train --optimizer sgd --lr 0.05 --momentum 0 ")


def test_a_config_file_and_keywords_count_as_changes_too(tmp_path) -> None:
    file = tmp_path / "c.yaml"
    file.write_text("weight_decay: 5.0e-4\nflip: none\n")
    config = resolve_config("paper", file, {"model": "resnet56", "seed": 3})
    assert recipe_changes(config) == {"weight_decay": 5e-4, "flip": "none", "seed": 3}
    assert recipe_changes(resolve_config("paper", overrides={"model": "resnet110"})) == {}  # its per_model warm-up is the recipe's
    assert recipe_changes(resolve_config("d2l", overrides={"model": "resnet18"})) == {}  # its per_family 224 px too
    assert recipe_changes(resolve_config("d2l", overrides={"model": "resnet18", "image_size": 96})) == {"image_size": 96}


def test_the_same_value_as_the_recipe_is_no_change() -> None:
    config = resolve_config("fast", overrides={"lr": 0.2, "nesterov": True, "model": "resnet32", "device": "cpu", "quiet": True})
    assert recipe_changes(config) == {}
    assert describe_recipe("fast", {}) == "recipe fast, unchanged"
    assert describe_recipe("paper", None).startswith("recipe paper, changes unknown")


def test_a_run_recorded_before_the_changes_were_resumes_as_unknown(tmp_path, capsys) -> None:
    data = make_image_folder(tmp_path / "data", per_class=8)
    out = tmp_path / "run"
    args = ["--dataset", "folder", "--data-dir", str(data), "--batch-size", "8", "--device", "cpu", "--out", str(out)]
    assert main(["train", "--epochs", "1", *args]) == 0
    config = yaml.safe_load((out / "config.yaml").read_text())
    del config["recipe_changes"]  # as written before runs recorded them
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--epochs", "2", "--device", "cpu"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("recipe paper, changes unknown")
    assert read_json(out / "summary.json")["recipe_changes"] is None and read_json(out / "summary.json")["epochs"] == 2
    assert main(["eval", str(out), "--device", "cpu"]) == 0


def test_recipes_prints_every_value_a_recipe_sets(capsys) -> None:
    assert main(["recipes"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in ("paper", "fast", "d2l", "transfer", "imagenet"))
    assert main(["recipes", "d2l", "--model", "resnet18"]) == 0
    rows = {line[2:].split()[0]: (line[0], line[2:].split(None, 1)[1]) for line in capsys.readouterr().out.splitlines()[2:] if line}
    assert rows["init"] == ("*", "xavier") and rows["image_size"] == ("*", "224") and rows["lr"] == ("*", "0.05")
    assert rows["seed"] == (" ", "0") and "out" not in rows and "device" not in rows
