"""What DDP sees when it wraps the model: the starting weights already set, SyncBatchNorm on request."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from resnetlab.checkpoint import build_checkpoint, load_checkpoint, model_from_checkpoint, save_checkpoint
from resnetlab.cli import build_parser
from resnetlab.cli.train_cmd import overrides_from
from resnetlab.errors import ResnetlabError
from resnetlab.models import create_model
from resnetlab.runs import RunFolder
from resnetlab.training import TrainConfig, distributed, resolve_config
from resnetlab.training import run as run_module
from resnetlab.training.build import build_trainer
from tests.builders import make_tiny_bundle, tiny_config

pytestmark = pytest.mark.gpu_emulated

TWO_PROCESSES = distributed.Distributed(rank=0, world_size=2, local_rank=0)


def first_conv_at_wrap(monkeypatch) -> list[torch.Tensor]:
    """Record the first convolution's weights at the moment the model is wrapped (DDP broadcasts them then)."""
    seen: list[torch.Tensor] = []

    def wrap(model, ctx, device):
        seen.append(model.conv1.weight.detach().clone())
        return model

    monkeypatch.setattr(distributed, "wrap_model", wrap)
    return seen


def test_init_from_weights_are_loaded_before_ddp_wraps_the_model(tmp_path, monkeypatch) -> None:
    torch.manual_seed(123)
    source = create_model("resnet20", num_classes=3)
    weights = tmp_path / "weights.pt"
    torch.save(source.state_dict(), weights)
    seen = first_conv_at_wrap(monkeypatch)
    run_module.train(tiny_config(tmp_path / "run", epochs=None, max_iters=1, init_from=str(weights)), bundle=make_tiny_bundle())
    assert len(seen) == 1 and torch.equal(seen[0], source.conv1.weight.detach())


def test_sync_bn_is_a_config_field_and_torchvisions_flag() -> None:
    args = build_parser().parse_args(["train", "--sync-bn"])
    assert overrides_from(args) == {"sync_bn": True}
    assert resolve_config(overrides={"sync_bn": True}).sync_bn is True
    assert TrainConfig().sync_bn is False


def test_sync_bn_converts_in_place_before_the_optimizer_and_ddp(monkeypatch, tmp_path) -> None:
    """The parameters stay the same objects (an optimizer keeps them) and checkpoints the same keys."""
    bundle = make_tiny_bundle()
    config = tiny_config("unused", sync_bn=True)
    meta = torch.device("meta")  # shapes only: a GPU device without a GPU
    with meta:
        model = create_model("resnet20", num_classes=3)
    keys, params = list(model.state_dict()), list(model.parameters())
    wrapped: list[nn.Module] = []
    monkeypatch.setattr(distributed, "wrap_model", lambda m, ctx, device: wrapped.append(m) or m)
    parts = build_trainer(config, bundle, model, run=RunFolder(tmp_path / "run", writer=False), ctx=TWO_PROCESSES, device=meta)
    batchnorms = [m for m in parts.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert batchnorms and all(isinstance(m, nn.SyncBatchNorm) for m in batchnorms)
    assert wrapped == [parts.model] and list(parts.model.state_dict()) == keys
    assert all(p is q for p, q in zip(parts.model.parameters(), params))
    assert {id(p) for g in parts.optimizer.param_groups for p in g["params"]} == {id(p) for p in params}


def test_sync_bn_changes_nothing_in_one_process_and_is_refused_off_gpus() -> None:
    model = create_model("resnet20", num_classes=3)
    assert distributed.sync_batchnorm(model, distributed.Distributed(), torch.device("cpu")) is model
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
    with pytest.raises(ResnetlabError, match="sync_bn needs GPUs"):
        distributed.sync_batchnorm(model, TWO_PROCESSES, torch.device("cpu"))


def test_a_checkpoint_of_a_sync_bn_run_loads_into_the_plain_model(tmp_path) -> None:
    """``--sync-bn``'s conversion keeps the keys, so eval and predict (``model_from_checkpoint``: the
    plain model) read the run's checkpoint with the weights and running statistics it trained."""
    torch.manual_seed(0)
    converted = distributed.sync_batchnorm(create_model("resnet20", num_classes=3), TWO_PROCESSES, torch.device("cuda"))
    assert any(isinstance(m, nn.SyncBatchNorm) for m in converted.modules())  # conversion only: no GPU needed
    for m in converted.modules():
        if isinstance(m, nn.SyncBatchNorm):
            m.running_mean.uniform_()  # statistics a run would have gathered
    save_checkpoint(build_checkpoint(
        model={"name": "resnet20", "num_classes": 3, "in_channels": 3, "options": {}}, classes=["a", "b", "c"],
        mean=[0.5] * 3, std=[0.25] * 3, input_size=[3, 16, 16], preprocess={"pipeline": "small"},
        state_dict=converted.state_dict()), tmp_path / "c.pt")
    plain = model_from_checkpoint(load_checkpoint(tmp_path / "c.pt"))
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in plain.modules())
    assert plain.state_dict().keys() == converted.state_dict().keys()
    assert all(torch.equal(plain.state_dict()[k], v) for k, v in converted.state_dict().items())
