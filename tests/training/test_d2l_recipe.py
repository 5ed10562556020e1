"""The d2l recipe (Dive into Deep Learning's train_ch6): its values, Xavier init, pixels unnormalised."""

from __future__ import annotations

import math

import torch
import yaml
from torch import nn

from resnetlab.models import create_model
from resnetlab.training import resolve_config, train
from resnetlab.training.run import build_model, normalized
from tests.builders import make_tiny_bundle, read_json


def test_recipe_values_are_d2ls() -> None:
    config = resolve_config("d2l", overrides={"model": "resnet20"})
    assert (config.init, config.optimizer, config.lr, config.momentum, config.weight_decay) == ("xavier", "sgd", 0.05, 0.0, 0.0)
    assert (config.batch_size, config.drop_last, config.milestones, config.warmup) == (128, False, [], 0.0)
    assert (config.crop_padding, config.flip, config.normalization, config.precision) == (0, "none", "none", "fp32")
    assert config.image_size is None  # a CIFAR net keeps the native size
    assert resolve_config("d2l", overrides={"model": "resnet18"}).image_size == 224  # per_family: imagenet
    assert resolve_config("d2l", overrides={"model": "resnet18", "image_size": 96}).image_size == 96  # a flag wins


def test_kaiming_leaves_the_models_own_weights_bit_identical() -> None:
    bundle = make_tiny_bundle()
    config = resolve_config("paper", overrides={"model": "resnet20", "seed": 3})
    assert config.init == "kaiming"
    torch.manual_seed(config.seed)  # as train() seeds before it builds the model
    built = build_model(config, bundle, torch.device("cpu"))
    torch.manual_seed(3)
    plain = create_model("resnet20", num_classes=3, in_channels=3)
    assert all(torch.equal(a, b) for a, b in zip(built.state_dict().values(), plain.state_dict().values(), strict=True))


def test_xavier_draws_every_conv_and_linear_weight_within_its_bound() -> None:
    bundle = make_tiny_bundle()
    config = resolve_config("d2l", overrides={"model": "resnet20", "seed": 3})
    model = build_model(config, bundle, torch.device("cpu"))
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) == 20  # 19 convolutions + fc
    for m in layers:
        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(m.weight)
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert m.weight.abs().max() <= bound
        assert abs(m.weight.std().item() - bound / math.sqrt(3)) < 0.2 * bound / math.sqrt(3)  # uniform(-b, b): std b/sqrt(3)
    assert torch.equal(model.bn1.weight, torch.ones(16))  # BatchNorm keeps the model's own


def test_normalization_none_keeps_pixels_in_0_1() -> None:
    bundle = normalized(make_tiny_bundle(channels=1), resolve_config("d2l"))
    assert (bundle.mean, bundle.std) == ((0.0,), (1.0,))


def test_a_d2l_run_records_what_it_did(tmp_path) -> None:
    config = resolve_config("d2l", overrides={"out": str(tmp_path / "run"), "epochs": 1, "batch_size": 20, "device": "cpu",
                                              "quiet": True})
    train(config, bundle=make_tiny_bundle(per_class=16))
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert {k: saved[k] for k in ("momentum", "weight_decay", "lr", "normalization", "init", "flip", "crop_padding")} == {
        "momentum": 0.0, "weight_decay": 0.0, "lr": 0.05, "normalization": "none", "init": "xavier", "flip": "none",
        "crop_padding": 0}
    assert read_json(tmp_path / "run" / "summary.json")["iterations"] == 3  # 48 images, batch 20, the last 8 trained on
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["normalization"] == {"mean": [0.0] * 3, "std": [1.0] * 3}
