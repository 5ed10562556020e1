"""Weight-decay groups as torchvision's ``set_weight_decay`` makes them (``norm_weight_decay``,
``bias_weight_decay``), and the fast recipe's groups exactly as before those two rates existed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from resnetlab.models import create_model
from resnetlab.training import resolve_config
from resnetlab.training.optim import freeze_backbone, parameter_groups


def meta_model(name: str) -> nn.Module:
    with torch.device("meta"):  # shapes only
        return create_model(name, num_classes=10)


def ids(params: list[nn.Parameter]) -> list[int]:
    return [id(p) for p in params]


@pytest.mark.parametrize("name", ["resnet20", "plain56", "resnet18", "resnext50_32x4d"])
def test_the_fast_recipe_decays_what_it_decayed_before_in_the_same_order(name):
    """Before, 1-d tensors (BatchNorm weights and biases, the classifier's bias) formed a second group
    without decay; a checkpoint's optimizer state matches the groups by position, so they must not move."""
    model = meta_model(name)
    groups = parameter_groups(model, resolve_config("fast", overrides={"model": name}))
    params = list(model.parameters())
    assert [g["weight_decay"] for g in groups] == [5e-4, 0.0]
    assert [ids(g["params"]) for g in groups] == [ids([p for p in params if p.ndim > 1]), ids([p for p in params if p.ndim <= 1])]


def test_resnet20s_groups_in_the_fast_recipe():
    groups = parameter_groups(meta_model("resnet20"), resolve_config("fast"))
    counts = [(len(g["params"]), sum(p.numel() for p in g["params"])) for g in groups]
    assert counts == [(20, 268_336), (39, 1_386)]  # 19 convolutions and fc.weight; 19 BatchNorms' pairs and fc.bias


def test_one_group_when_every_parameter_decays_alike():
    model = meta_model("resnet20")
    for config in (resolve_config("paper"), resolve_config("fast", overrides={"norm_weight_decay": 5e-4, "bias_weight_decay": None})):
        groups = parameter_groups(model, config)
        assert len(groups) == 1 and ids(groups[0]["params"]) == ids(list(model.parameters()))
        assert groups[0]["weight_decay"] == config.weight_decay


def test_a_bias_takes_the_bias_rate_before_the_norm_rate_as_in_torchvision():
    model = meta_model("resnet20")
    names = dict(zip(map(id, model.parameters()), (n for n, _ in model.named_parameters())))

    def named_groups(**rates):
        groups = parameter_groups(model, resolve_config("paper", overrides=rates))
        return {g["weight_decay"]: {names[id(p)] for p in g["params"]} for g in groups}

    norm_only = named_groups(norm_weight_decay=0.0)
    assert norm_only[0.0] == {n for n in names.values() if n.startswith("bn") or ".bn" in n}  # fc.bias keeps weight_decay
    bias_only = named_groups(bias_weight_decay=0.0)
    assert bias_only[0.0] == {n for n in names.values() if n.endswith(".bias")}  # BatchNorm weights keep weight_decay
    both = named_groups(norm_weight_decay=1e-5, bias_weight_decay=0.0)
    assert both[1e-5] == norm_only[0.0] - bias_only[0.0] and both[0.0] == bias_only[0.0]


def test_a_frozen_backbone_groups_only_the_classifier():
    model = meta_model("resnet20")
    config = resolve_config("fast", overrides={"freeze_backbone": True})
    assert len(parameter_groups(model, config)[0]["params"]) > 2  # grouping freezes nothing: the caller does
    freeze_backbone(model)
    assert [[p.shape for p in g["params"]] for g in parameter_groups(model, config)] == [[(10, 64)], [(10,)]]
