"""``resnetlab.devices``: which device each process uses, and the settings that depend on it (memory
layout, cuDNN autotuning, mixed precision), on a CPU and on a mocked GPU."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
import torch

from resnetlab import devices
from resnetlab.checkpoint import load_checkpoint
from resnetlab.devices import memory_format, resolve_device
from resnetlab.errors import ResnetlabError
from resnetlab.evaluation.evaluate import model_and_loader
from resnetlab.evaluation.logits import collect_logits, loss_and_accuracy
from resnetlab.evaluation.view_averaging import TestViews
from resnetlab.precision import dtype_of, grad_scaler, resolve_precision
from resnetlab.training import distributed, train
from resnetlab.training import run as run_module
from tests.builders import fake_cuda, make_tiny_bundle, tiny_config

pytestmark = pytest.mark.gpu_emulated


def test_under_torchrun_each_process_takes_the_gpu_of_its_local_rank(torchrun_env) -> None:
    torchrun_env(rank=3, world_size=4, local_rank=1)
    ctx = distributed.from_environment()
    with fake_cuda(count=2):
        assert distributed.process_device(ctx, resolve_device("cuda")) == torch.device("cuda", 1)
        assert distributed.process_device(ctx, resolve_device("auto")) == torch.device("cuda", 1)


def test_under_torchrun_a_gpu_index_is_refused_not_shared_by_every_process(torchrun_env) -> None:
    torchrun_env(rank=1, world_size=2)
    with fake_cuda(count=2), pytest.raises(ResnetlabError, match="cuda:1 names one GPU.*--device cuda"):
        distributed.process_device(distributed.from_environment(), resolve_device("cuda:1"))


def test_a_single_process_keeps_the_gpu_it_was_given() -> None:
    with fake_cuda(count=2):
        assert distributed.process_device(distributed.from_environment(), resolve_device("cuda:1")) == torch.device("cuda", 1)


def test_more_processes_than_gpus_is_refused(torchrun_env) -> None:
    torchrun_env(rank=2, world_size=3)
    with fake_cuda(count=2), pytest.raises(ResnetlabError, match="LOCAL_RANK 2 but only 2 GPU"):
        distributed.process_device(distributed.from_environment(), resolve_device("cuda"))


def test_each_process_selects_its_gpu_before_the_process_group_opens() -> None:
    calls: list[tuple] = []
    with mock.patch.object(torch.cuda, "set_device", lambda d: calls.append(("set_device", d))), \
         mock.patch.object(distributed.dist, "init_process_group", lambda **kw: calls.append(("init", kw))), \
         mock.patch.object(distributed.dist, "is_initialized", lambda: False):
        distributed.init_process_group(distributed.Distributed(rank=1, world_size=2, local_rank=1), torch.device("cuda", 1))
    assert calls == [("set_device", torch.device("cuda", 1)),
                     ("init", {"backend": "nccl", "device_id": torch.device("cuda", 1), "timeout": timedelta(seconds=600)})]


@pytest.mark.parametrize("capability, dtype, loss_scaling", [((7, 5), torch.float16, True), ((7, 0), torch.float16, True),
                                                              ((8, 0), torch.bfloat16, False), ((9, 0), torch.bfloat16, False)])
def test_bf16_only_where_the_gpu_computes_it_natively(capability, dtype, loss_scaling) -> None:
    """A T4 (7.5) or V100 (7.0) emulates bf16, slowly: those get fp16 with loss scaling."""
    with fake_cuda(capability=capability):
        precision = resolve_precision("auto", torch.device("cuda"))
        assert dtype_of(precision) == dtype
        assert grad_scaler(torch.device("cuda"), precision).is_enabled() is loss_scaling


def test_cudnn_searches_the_fastest_algorithms_on_gpus_only(monkeypatch) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    devices.tune_for_fixed_sizes(torch.device("cpu"))
    assert torch.backends.cudnn.benchmark is False
    devices.tune_for_fixed_sizes(torch.device("cuda", 0))
    assert torch.backends.cudnn.benchmark is True


def test_training_tunes_for_its_device(tmp_path, monkeypatch) -> None:
    tuned: list[torch.device] = []
    monkeypatch.setattr(run_module, "tune_for_fixed_sizes", tuned.append, raising=False)
    run_module.train(tiny_config(tmp_path / "run", epochs=None, max_iters=1), bundle=make_tiny_bundle())
    assert tuned == [torch.device("cpu")]


def test_a_runs_log_names_its_gpu_by_model_and_by_the_index_a_scheduler_chose(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: f"NVIDIA H200 #{index}")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    assert devices.device_name(torch.device("cuda")) == "cuda:0 (NVIDIA H200 #0, CUDA_VISIBLE_DEVICES=5)"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert devices.device_name(torch.device("cuda", 1)) == "cuda:1 (NVIDIA H200 #1)"
    run_module.train(tiny_config(tmp_path / "run", epochs=None, max_iters=1), bundle=make_tiny_bundle())
    first = (tmp_path / "run" / "train.log").read_text().splitlines()[1]  # after the recipe line
    assert f"device cpu ({torch.get_num_threads()} threads), precision " in first


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
