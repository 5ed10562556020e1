"""On a real CUDA GPU, what the emulated tests beside this file stand in for: nccl collectives,
bf16 autocast, a checkpoint's GPU random state, evaluation and a resumed run on the GPU.

Marked ``gpu``: skipped where ``torch.cuda.is_available()`` is False (tests/conftest.py); run them
on a GPU machine with ``pytest -m gpu``.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from resnetlab.checkpoint import load_checkpoint, rng_state, set_rng_state
from resnetlab.evaluation.evaluate import model_and_loader
from resnetlab.evaluation.logits import collect_logits, loss_and_accuracy
from resnetlab.evaluation.view_averaging import TestViews
from resnetlab.models import create_model
from resnetlab.precision import autocast, grad_scaler, resolve_precision
from resnetlab.training import TrainingInterrupted, train
from resnetlab.training import distributed as distributed_module
from tests.builders import tiny_config
from tests.training.test_resume import final_weights, interrupt_at

pytestmark = pytest.mark.gpu

CUDA = torch.device("cuda", 0)


@pytest.fixture
def nccl_group(tmp_path: Path) -> Iterator[None]:
    """A one-process nccl group on GPU 0, opened as training opens it (its device named)."""
    torch.cuda.set_device(CUDA)
    dist.init_process_group("nccl", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1, device_id=CUDA)
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_nccl_refuses_a_cpu_tensor_as_the_cuda_gloo_stand_in_does(nccl_group) -> None:
    with pytest.raises(RuntimeError, match="(?i)cpu|cuda"):
        dist.all_reduce(torch.tensor([1.0]))


def test_metric_sums_go_through_nccl_on_the_gpu(nccl_group) -> None:
    total = distributed_module.reduce_across_processes([2.0, 3.0, 5.0], CUDA)
    assert total.device == CUDA and total.dtype == torch.float64
    assert total.tolist() == [2.0, 3.0, 5.0]  # one process: the sum is its own values
    totals = torch.tensor([1.5, 4.0, 8.0], device=CUDA)
    assert distributed_module.sum_over_processes(totals) is totals and totals.tolist() == [1.5, 4.0, 8.0]


def test_batchnorm_statistics_broadcast_through_nccl(nccl_group) -> None:
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10).to(CUDA)
    model.train()(torch.randn(4, 3, 32, 32, device=CUDA))  # running statistics away from their initial values
    before = {name: buffer.clone() for name, buffer in model.named_buffers()}
    distributed_module.broadcast_buffers(model)
    assert all(torch.equal(buffer, before[name]) for name, buffer in model.named_buffers())
    assert len(before) == 3 * 19  # mean, var, batches tracked of ResNet-20's 19 BatchNorm layers


def test_auto_precision_is_native_bf16_autocast_with_fp32_weights_and_no_loss_scaling() -> None:
    if torch.cuda.get_device_capability(CUDA) < (8, 0):
        pytest.skip("bf16 is native from compute capability 8.0 (this GPU gets fp16 with loss scaling)")
    precision = resolve_precision("auto", CUDA)
    scaler = grad_scaler(CUDA, precision)
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=10).to(CUDA)
    with autocast(CUDA, precision):
        logits = model(torch.randn(4, 3, 32, 32, device=CUDA))
    logits.float().sum().backward()
    assert precision == "bf16" and logits.dtype == torch.bfloat16 and not scaler.is_enabled()
    assert {(p.dtype, p.grad.dtype) for p in model.parameters()} == {(torch.float32, torch.float32)}


def test_fp16_autocast_scales_the_loss_on_the_gpu() -> None:
    scaler = grad_scaler(CUDA, "fp16")
    model = create_model("resnet20", num_classes=10).to(CUDA)
    with autocast(CUDA, "fp16"):
        logits = model(torch.randn(4, 3, 32, 32, device=CUDA))
    assert logits.dtype == torch.float16 and scaler.is_enabled()


def test_a_checkpoints_gpu_random_state_gives_the_same_draws_again() -> None:
    torch.cuda.manual_seed(3)
    saved = rng_state(CUDA)
    first = torch.rand(5, device=CUDA)
    set_rng_state(saved, CUDA)
    assert len(saved["cuda"]) == 1 and torch.equal(torch.rand(5, device=CUDA), first)


def test_a_run_trained_on_the_gpu_evaluates_there_to_its_own_accuracy(tmp_path, tiny_bundle) -> None:
    out = tmp_path / "run"
    summary = train(tiny_config(out, epochs=1, device="cuda", precision="fp32", test_time_flip=True), bundle=tiny_bundle)
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    model, loader = model_and_loader(ckpt, tiny_bundle.test, 256, "cuda")
    assert next(model.parameters()).device.type == "cuda" and loader.device.type == "cuda"
    logits, labels = collect_logits(model, loader.batches(0), TestViews(flip=True))
    assert loss_and_accuracy(logits, labels)["acc"] == summary["final"]["test_acc"]
    assert ckpt["config"]["precision"] == "fp32" and len(ckpt["rng"]["cuda"]) == 1


@pytest.mark.parametrize("batches", [{}, {"batch_size": 10, "drop_last": False}], ids=["full-batches", "smaller-last-batch"])
def test_a_run_resumed_on_the_gpu_ends_bit_identical(tmp_path, tiny_bundle, monkeypatch, batches) -> None:
    """As tests/training/test_resume.py on the CPU, with the step a CUDA graph (warm-up steps eager,
    and with a smaller last batch, that one eager too). cuDNN is held to its deterministic
    algorithms: the straight and the resumed run then differ only if the resume lost state."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    extras = {"device": "cuda", "precision": "bf16", **batches}
    expected = train(tiny_config(straight, **extras), bundle=tiny_bundle)
    with pytest.raises(TrainingInterrupted) as info:
        train(tiny_config(broken, **extras), bundle=tiny_bundle, on_iteration=interrupt_at(8, signal.SIGTERM))
    assert info.value.iteration == 8
    resumed = train(tiny_config(broken, **extras), bundle=tiny_bundle, resume=True)
    want, got = final_weights(straight), final_weights(broken)
    assert want.keys() == got.keys()
    for key in want:  # weights and BatchNorm running statistics
        assert torch.equal(want[key], got[key]), key
    assert resumed["final"] == expected["final"] and resumed["iterations"] == expected["iterations"]
