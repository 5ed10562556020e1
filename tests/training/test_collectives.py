"""Collectives on the training device (nccl takes only CUDA tensors), and every process waiting
for the checkpoint on Ctrl-C."""

from __future__ import annotations

import os
import signal

import pytest
import torch
import torch.distributed as dist
from torch import nn

from resnetlab.evaluation.view_averaging import TestViews
from resnetlab.runs import RunFolder
from resnetlab.training import TrainingInterrupted, train
from resnetlab.training import distributed as distributed_module
from resnetlab.training.distributed import Distributed
from tests.builders import make_tiny_bundle, make_trainer, tiny_config

pytestmark = pytest.mark.gpu_emulated

TWO_PROCESSES = Distributed(rank=0, world_size=2, local_rank=0)  # the role; the group itself has one process


def test_the_cuda_gloo_group_refuses_cpu_tensors_as_nccl_does(cuda_gloo) -> None:
    with pytest.raises(RuntimeError, match="device type cpu"):
        dist.all_reduce(torch.tensor([1.0]))


def test_metric_sums_are_built_on_the_training_device(cuda_gloo) -> None:
    total = distributed_module.reduce_across_processes([2.0, 3.0, 5.0], torch.device("meta"))  # meta: a non-CPU device with shapes only
    assert total.device.type == "meta" and total.shape == (3,) and total.dtype == torch.float64


class ClaimsDevice:
    """An evaluation loader whose batches are on the CPU but which reports ``device`` as the
    training device (there is no GPU to put them on)."""

    def __init__(self, device: torch.device, bundle) -> None:
        self.device, self.padding_value = device, torch.zeros(1, 3, 1, 1)
        self.images = bundle.test.images.float() / 255
        self.labels = bundle.test.labels

    def __len__(self) -> int:
        return 1

    def batches(self, epoch: int = 0):
        yield self.images, self.labels


def test_stop_agreement_and_evaluation_totals_reduce_on_the_training_device(cuda_gloo, monkeypatch, tmp_path) -> None:
    """The real collective runs (and refuses a CPU tensor); only the read back of the sum is faked,
    as the sum over this one-process group of the values given."""
    seen: list[torch.device] = []
    real = getattr(distributed_module, "reduce_across_processes", None)

    def reduce_then_read(values, device):
        seen.append(real(values, device).device)
        return torch.tensor(values, dtype=torch.float64)

    monkeypatch.setattr(distributed_module, "reduce_across_processes", reduce_then_read, raising=False)
    meta = torch.device("meta")
    bundle = make_tiny_bundle()
    trainer = make_trainer(tmp_path / "run", bundle)
    trainer.run.close()
    trainer.ctx, trainer.device = TWO_PROCESSES, meta  # the role of rank 0 of two, on a device that is not the CPU
    assert trainer.agree(True) is True
    torch.manual_seed(0)
    model = trainer.model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 3))
    result = trainer.evaluate_loader(ClaimsDevice(meta, bundle), TestViews())
    logits = model(bundle.test.images.float() / 255)
    expected = (logits.argmax(1) == bundle.test.labels).sum().item() / len(bundle.test.labels)
    assert seen == [meta, meta]
    assert result["acc"] == expected
    assert result["loss"] == pytest.approx(nn.functional.cross_entropy(logits, bundle.test.labels).item(), rel=1e-5)


def test_an_interrupted_run_waits_for_every_process_before_leaving(tmp_path, monkeypatch) -> None:
    """torchrun signals all ranks; one leaving early makes torchrun signal rank 0 again mid-save."""
    events: list[str] = []
    real_save = RunFolder.write_checkpoint
    monkeypatch.setattr(RunFolder, "write_checkpoint", lambda run, ckpt, **kw: (real_save(run, ckpt, **kw), events.append("save")))
    monkeypatch.setattr(distributed_module, "barrier", lambda: events.append("barrier"))
    config = tiny_config(tmp_path / "run", epochs=2)
    with pytest.raises(TrainingInterrupted):
        train(config, bundle=make_tiny_bundle(),
              on_iteration=lambda i: os.kill(os.getpid(), signal.SIGINT) if i == 2 else None)
    assert events == ["save", "barrier"]
