"""Memory layout: channels_last where it is faster, and every evaluation in the layout training used."""

from __future__ import annotations

import pytest
import torch

from resnetlab.checkpoint import load_checkpoint
from resnetlab.devices import memory_format
from resnetlab.evaluation.evaluate import model_and_loader
from resnetlab.evaluation.logits import collect_logits, loss_and_accuracy
from resnetlab.evaluation.view_averaging import TestViews
from resnetlab.training import train
from tests.training.conftest import tiny_config


def test_channels_last_on_cuda_and_cpu_only_when_asked() -> None:
    assert memory_format(torch.device("cpu"), True) == torch.channels_last
    assert memory_format(torch.device("cuda"), True) == torch.channels_last
    assert memory_format(torch.device("mps"), True) == torch.contiguous_format
    assert memory_format(torch.device("cpu"), False) == torch.contiguous_format


@pytest.mark.parametrize("channels_last", [True, False])
def test_evaluation_uses_the_runs_layout_and_reproduces_its_accuracy(tmp_path, bundle, channels_last) -> None:
    out = tmp_path / "run"
    summary = train(tiny_config(out, epochs=1, channels_last=channels_last, test_time_flip=True), bundle=bundle)
    model, loader = model_and_loader(load_checkpoint(out / "checkpoints" / "last.pt"), bundle.test, 256, "cpu")
    layout = torch.channels_last if channels_last else torch.contiguous_format
    assert model.conv1.weight.is_contiguous(memory_format=layout)
    images, _ = next(iter(loader.batches(0)))
    assert images.is_contiguous(memory_format=layout)
    logits, labels = collect_logits(model, loader.batches(0), TestViews(flip=True))
    assert loss_and_accuracy(logits, labels)["acc"] == summary["final"]["test_acc"]
