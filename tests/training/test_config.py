"""Recipes and config resolution: layers, unknown keys, per-model warm-up, round trip."""

from __future__ import annotations

import pytest
import yaml

from resnetlab.errors import ResnetlabError
from resnetlab.training import TrainConfig, list_recipes, resolve_config
from resnetlab.training.config import save_config


def test_defaults_are_the_paper_recipe():
    paper, defaults = resolve_config("paper"), TrainConfig()
    for key in ("optimizer", "lr", "momentum", "weight_decay", "batch_size", "max_iters", "milestones", "lr_decay"):
        assert getattr(paper, key) == getattr(defaults, key)
    assert (paper.lr, paper.weight_decay, paper.batch_size, paper.max_iters) == (0.1, 1e-4, 128, 64_000)
    assert resolve_config().recipe == "paper"


@pytest.mark.parametrize("name", ["paper", "imagenet-style-on-cifar", "fine-tune", "fast"])
def test_every_recipe_resolves(name):
    assert name in list_recipes()
    assert resolve_config(name).recipe == name


def test_recipe_values():
    assert resolve_config("imagenet-style-on-cifar").weight_decay == 5e-4
    fine = resolve_config("fine-tune")
    assert (fine.optimizer, fine.lr) == ("adam", 1e-4)


def test_paper_warmup_only_for_resnet110_and_1202():
    assert resolve_config("paper", overrides={"model": "resnet110"}).error_warmup_lr == 0.01
    assert resolve_config("paper", overrides={"model": "resnet1202"}).error_warmup_lr == 0.01
    assert resolve_config("paper", overrides={"model": "resnet56"}).error_warmup_lr is None


def test_layers_file_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"lr": 0.2, "epochs": 7}))
    config = resolve_config("paper", path, {"lr": 0.3})
    assert (config.lr, config.epochs, config.weight_decay) == (0.3, 7, 1e-4)


def test_unknown_keys_are_errors(tmp_path):
    with pytest.raises(ResnetlabError, match="learning_rate"):
        resolve_config(overrides={"learning_rate": 0.1})
    path = tmp_path / "c.yaml"
    path.write_text("batchsize: 3\n")
    with pytest.raises(ResnetlabError, match="did you mean batch_size"):
        resolve_config(config_file=path)
    with pytest.raises(ResnetlabError, match="unknown recipe"):
        resolve_config("nope")
    with pytest.raises(ResnetlabError, match="schedule"):
        resolve_config(overrides={"schedule": "zigzag"})


def test_saved_config_is_a_config_file(tmp_path):
    config = resolve_config("fast", overrides={"model_options": {"shortcut": "B"}, "epochs": 4})
    save_config(config, tmp_path / "config.yaml")
    assert resolve_config(config_file=tmp_path / "config.yaml") == config
