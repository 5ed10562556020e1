"""The weight average: torch's AveragedModel numbers and state dict, without a host read per update."""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils._python_dispatch import TorchDispatchMode

from resnetlab.models import create_model
from resnetlab.training.ema import WeightAverage


class HostReads(TorchDispatchMode):
    """Counts reads of a tensor's value to the host (``item``, ``bool``, ``tolist``…): on a GPU each waits for its queue."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += 1
        return func(*args, **(kwargs or {}))


def train_a_little(model: nn.Module, step: int) -> None:
    """Change every weight and BatchNorm buffer as a training step does (running stats, batch count)."""
    torch.manual_seed(step)
    model.train()
    model(torch.randn(4, 3, 32, 32))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)


def test_the_average_matches_averaged_model_bit_for_bit_and_reads_nothing_to_the_host() -> None:
    torch.manual_seed(0)
    model = create_model("resnet20")
    reference = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    average = WeightAverage(model, 0.9)
    reads, reference_reads = HostReads(), HostReads()
    for step in range(4):
        train_a_little(model, step)
        with reference_reads:
            reference.update_parameters(model)
        with reads:
            average.update(model)
    assert reads.count == 0 and reference_reads.count >= 8  # torch reads its counter at least twice an update
    ours, theirs = average.state_dict(), reference.state_dict()
    assert ours.keys() == theirs.keys() and int(ours["n_averaged"]) == 4
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert not torch.equal(ours["module.fc.weight"], model.state_dict()["fc.weight"])  # an average, not a copy


def test_a_restored_average_goes_on_averaging_and_a_fresh_one_copies_first() -> None:
    torch.manual_seed(0)
    model = create_model("resnet20")
    average = WeightAverage(model, 0.5)
    train_a_little(model, 0)
    average.update(model)
    saved = {k: v.clone() for k, v in average.state_dict().items()}

    restored = WeightAverage(create_model("resnet20"), 0.5)
    restored.load_state_dict(saved)
    assert restored.started
    train_a_little(model, 1)
    average.update(model)
    restored.update(model)
    assert all(torch.equal(a, b) for a, b in zip(average.state_dict().values(), restored.state_dict().values()))

    fresh = WeightAverage(create_model("resnet20"), 0.5)
    fresh.update(model)  # the first update takes the model's weights as they are
    assert torch.equal(fresh.module.fc.weight, model.fc.weight)
