"""Recipes and config resolution: layers, unknown keys, per-model warm-up, round trip, uncropped epochs,
older spellings, and the help text every field carries to ``resnetlab train --help``."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import yaml

from resnetlab.cli import main
from resnetlab.errors import ResnetlabError
from resnetlab.runs import write_config
from resnetlab.training import TrainConfig, list_recipes, resolve_config
from resnetlab.training.build import build_loaders
from resnetlab.training.config import FIELDS, config_from_dict, read_run_config
from resnetlab.training.distributed import Distributed
from resnetlab.training.trainer import crop_epochs
from tests.builders import tiny_config


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


@pytest.mark.parametrize("key, value", [("lr", float("nan")), ("weight_decay", float("inf")), ("momentum", "0.9")])
def test_rates_must_be_finite_numbers(key, value):
    """A NaN learning rate would otherwise train one step and stop on a NaN loss."""
    with pytest.raises(ResnetlabError, match=f"{key} must be a finite number"):
        resolve_config(overrides={key: value})


def test_model_name_and_options_are_checked_with_the_config():
    """Before any data is read: a typo must not cost a download (or a folder scan) first."""
    with pytest.raises(ResnetlabError, match=r"unknown model 'resnet21'.*resnet20"):
        resolve_config(overrides={"model": "resnet21"})
    with pytest.raises(ResnetlabError, match="does not take option.*shortcutt.*takes: shortcut"):
        resolve_config(overrides={"model_options": {"shortcutt": "B"}})
    assert resolve_config(overrides={"model": "resnet56", "model_options": {"shortcut": "B"}}).model_options == {"shortcut": "B"}


def test_saved_config_is_a_config_file(tmp_path):
    config = resolve_config("fast", overrides={"model_options": {"shortcut": "B"}, "epochs": 4})
    write_config(config.to_dict(), tmp_path / "config.yaml")
    assert resolve_config(config_file=tmp_path / "config.yaml") == config


def test_uncropped_epochs_are_the_last_of_the_budget():
    assert crop_epochs(resolve_config("fast", overrides={"epochs": 15, "uncropped_epochs": 3}), 390) == 12
    assert crop_epochs(resolve_config("fast", overrides={"epochs": 15}), 390) is None  # crops in every epoch
    budget_in_steps = resolve_config("paper", overrides={"max_iters": 1000, "uncropped_epochs": 2})
    assert crop_epochs(budget_in_steps, 390) == 1  # 1000 steps are 3 epochs, the last one partial
    with pytest.raises(ResnetlabError, match="uncropped_epochs must be a whole number"):
        resolve_config(overrides={"uncropped_epochs": -1})
    with pytest.raises(ResnetlabError, match="crop_padding must be a whole number"):
        resolve_config(overrides={"crop_padding": 2.5})


def test_batch_copies_reach_the_training_loader_and_are_checked(tmp_path, bundle):
    config = tiny_config(tmp_path, batch_copies=2)
    train_loader, _, test_loader = build_loaders(config, bundle, torch.device("cpu"), Distributed())
    images, labels = next(train_loader.batches(0))
    assert train_loader.augmentation.copies == 2 and images.shape[0] == 2 * config.batch_size == len(labels)
    assert len(next(test_loader.batches(0))[0]) == len(bundle.test)  # evaluation sees each image once
    with pytest.raises(ResnetlabError, match="batch_copies must be a whole number >= 1, got 0"):
        resolve_config(overrides={"batch_copies": 0})


def test_the_training_loader_stops_cropping_for_the_uncropped_epochs(tmp_path, bundle):
    config = tiny_config(tmp_path, epochs=5, uncropped_epochs=2)
    train_loader, _, test_loader = build_loaders(config, bundle, torch.device("cpu"), Distributed())
    assert train_loader.augmentation.crop_epochs == 3 and [train_loader.augmentation.crops_in(e) for e in (2, 3)] == [True, False]
    assert not test_loader.augmentation.crops_in(0)


def test_set_and_model_option_pairs_are_typed_alike_as_yaml_scalars() -> None:
    """--set and --model-option read VALUE as a config file would: numbers, booleans, text, null."""
    from resnetlab.cli.flags import parse_options
    from resnetlab.sweeps.sweep import parse_set

    pairs = ["epochs=2", "lr=0.05", "zero_init_residual=true", "shortcut=B", "data-dir=/data/x", "init_from=null", "note=[1"]
    want = {"epochs": 2, "lr": 0.05, "zero_init_residual": True, "shortcut": "B", "data_dir": "/data/x", "init_from": None,
            "note": "[1"}
    assert parse_set(pairs) == parse_options(pairs) == want
    with pytest.raises(ResnetlabError, match=r"--model-option 'shortcut' must look like KEY=VALUE, e.g. --model-option shortcut=B"):
        parse_options(["shortcut"])
    with pytest.raises(ResnetlabError, match=r"--set '=3' must look like KEY=VALUE"):
        parse_set(["=3"])
    with pytest.raises(ResnetlabError, match=r"--set 'epochs=' has no value: give one \(--set epochs=null unsets it\)"):
        parse_set(["epochs="])  # empty is a slip, as train refuses --epochs '', not "unset"


def test_every_field_has_its_help_in_its_metadata():
    assert all(f.metadata.get("help") for f in dataclasses.fields(TrainConfig)), "a TrainConfig field without help"
    assert TrainConfig().model_options == {} and TrainConfig().model_options is not TrainConfig().model_options
    assert TrainConfig().milestones == [0.5, 0.75]


def test_train_help_shows_each_fields_help(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    shown = "".join(capsys.readouterr().out.split())  # argparse wraps lines (at spaces and hyphens)
    for name in ("lr", "norm_weight_decay", "bias_weight_decay", "schedule", "test_time_shift", "model"):
        flag, text = "--" + name.replace("_", "-"), FIELDS[name].metadata["help"]
        assert flag in shown and "".join(text.split()) in shown, name
    assert all("".join(FIELDS[k].metadata["help"].split()) in shown for k in FIELDS if k not in ("model_options", "recipe"))


def test_a_whitened_first_convolution_in_an_old_config_names_its_new_place(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("whiten_first_conv: true\n")
    for read in (lambda: resolve_config(config_file=path), lambda: config_from_dict({"whiten_first_conv": True}, "a checkpoint")):
        with pytest.raises(ResnetlabError, match=r"whiten_first_conv in .* moved to experiments/whitened_init.py.*--init-from"):
            read()
    with pytest.raises(ResnetlabError, match="whiten_first_conv must be true or false"):
        config_from_dict({"whiten_first_conv": "maybe"}, "a checkpoint")


OLDER_SPELLINGS = {"schedule": "onecycle", "no_weight_decay_on_bn_and_bias": True, "whiten_first_conv": False}


@pytest.mark.parametrize("read", ["config file", "run folder", "checkpoint"])
def test_older_spellings_read_as_todays(tmp_path, read):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(OLDER_SPELLINGS))
    config = {"config file": lambda: resolve_config(config_file=path), "run folder": lambda: read_run_config(path),
              "checkpoint": lambda: config_from_dict(OLDER_SPELLINGS, "a checkpoint")}[read]()
    assert (config.schedule, config.norm_weight_decay, config.bias_weight_decay) == ("linear", 0.0, 0.0)


def test_a_fast_run_of_an_older_version_is_todays_fast_recipe(tmp_path):
    """Its config.yaml (and its checkpoints' config) ask for nothing different: it resumes."""
    old = {k: v for k, v in resolve_config("fast").to_dict().items() if k not in ("norm_weight_decay", "bias_weight_decay")}
    old |= OLDER_SPELLINGS
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old, sort_keys=False))
    assert resolve_config(config_file=tmp_path / "config.yaml") == resolve_config("fast")
    assert config_from_dict(old, "a checkpoint") == resolve_config("fast")


def test_weight_decay_everywhere_in_an_old_config_stays_everywhere(tmp_path):
    """``no_weight_decay_on_bn_and_bias: false`` meant one rate for all: None, even over the fast recipe's 0.0."""
    path = tmp_path / "config.yaml"
    path.write_text("no_weight_decay_on_bn_and_bias: false\nschedule: onecycle\n")
    config = resolve_config("fast", path)
    assert (config.norm_weight_decay, config.bias_weight_decay, config.schedule) == (None, None, "linear")
    assert resolve_config(overrides={"schedule": "onecycle"}).schedule == "linear"


def test_a_new_config_has_only_the_new_names(tmp_path):
    write_config(resolve_config("fast").to_dict(), tmp_path / "config.yaml")
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert (saved["schedule"], saved["norm_weight_decay"], saved["bias_weight_decay"]) == ("linear", 0.0, 0.0)
    assert not {"no_weight_decay_on_bn_and_bias", "whiten_first_conv", "amp"} & set(saved)
    assert (TrainConfig().norm_weight_decay, TrainConfig().bias_weight_decay) == (None, None)


@pytest.mark.parametrize("key", ["norm_weight_decay", "bias_weight_decay"])
def test_norm_and_bias_weight_decay_are_rates_or_none(key):
    assert getattr(resolve_config(overrides={key: 0}), key) == 0
    with pytest.raises(ResnetlabError, match=f"{key} must be >= 0"):
        resolve_config(overrides={key: -1e-4})
    with pytest.raises(ResnetlabError, match=f"{key} must be a finite number"):
        resolve_config(overrides={key: float("nan")})


def test_progressive_resizing_stages_end_at_fractions_or_counts_of_the_epochs_and_are_checked(tmp_path, bundle):
    from resnetlab.training.trainer import size_stages

    fast = {"epochs": 20, "progressive_sizes": [20, 24], "progressive_ends": [0.3, 0.6]}
    assert size_stages(resolve_config("fast", overrides=fast), 390) == ((20, 6), (24, 12))
    assert size_stages(resolve_config("fast", overrides=fast | {"progressive_ends": [5, 9]}), 390) == ((20, 5), (24, 9))
    assert size_stages(resolve_config("fast", overrides={"epochs": 20}), 390) == ()
    for bad, message in [({"progressive_sizes": [20]}, "one entry each per stage, got 1 size"),
                         ({"progressive_sizes": [20.5, 24]}, "progressive_sizes must be whole numbers"),
                         ({"progressive_ends": [0.6, 0.3]}, "progressive_ends must be positive and increasing"),
                         ({"progressive_mode": "shrink"}, "progressive_mode must be one of resize, crop")]:
        with pytest.raises(ResnetlabError, match=message):
            resolve_config("fast", overrides=fast | bad)
    with pytest.raises(ResnetlabError, match=r"end the stages at epochs \[1, 1\] of 4"):
        size_stages(resolve_config("fast", overrides={"epochs": 4, "progressive_sizes": [4, 6], "progressive_ends": [0.3, 0.35]}), 10)
    config = tiny_config(tmp_path, epochs=4, progressive_sizes=[4, 6], progressive_ends=[0.25, 0.5])
    train_loader, _, test_loader = build_loaders(config, bundle, torch.device("cpu"), Distributed())
    assert [next(train_loader.batches(e))[0].shape[2] for e in range(4)] == [4, 6, 8, 8]
    assert next(test_loader.batches(0))[0].shape[2] == 8  # evaluation sees the whole images
    with pytest.raises(ResnetlabError, match=r"progressive_sizes \[4, 12\] has a side larger than the 8-pixel images"):
        too_large = tiny_config(tmp_path, epochs=4, progressive_sizes=[4, 12], progressive_ends=[1, 2])
        build_loaders(too_large, bundle, torch.device("cpu"), Distributed())
