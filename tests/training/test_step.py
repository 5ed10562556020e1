"""The training step: one function, the same numbers eagerly and through the graph's plumbing."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch
from torch import nn

from resnetlab.models import create_model
from resnetlab.training.optim import create_optimizer
from resnetlab.training.schedules import create_schedule
from resnetlab.training.step import GraphedStep, StepParts, graphs_unsupported, train_step
from tests.builders import make_trainer, tiny_config

# A schedule that changes the learning rate at every step: a graph that baked it in would show.
CONFIG = tiny_config("unused", recipe="fast", schedule="linear", warmup=0.3, weight_decay=5e-4, norm_weight_decay=0.0)


def parts_and_schedule(total: int) -> tuple[StepParts, object]:
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=3)
    optimizer = create_optimizer(model, CONFIG)
    parts = StepParts(model, nn.CrossEntropyLoss(label_smoothing=0.1), optimizer, nullcontext,
                      torch.amp.GradScaler("cpu", enabled=False))
    return parts, create_schedule(optimizer, CONFIG, total, 6)


def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Two epochs of five batches of 8 and a last, smaller one of 5."""
    gen = torch.Generator().manual_seed(1)
    epoch = [(torch.randn(n, 3, 8, 8, generator=gen), torch.randint(0, 3, (n,), generator=gen)) for n in (8,) * 5 + (5,)]
    return epoch + epoch


def train(step, parts: StepParts, schedule) -> list[torch.Tensor]:
    totals = []
    for images, labels in batches():
        totals.append(step(images, labels))
        schedule.step()
    return totals


def test_the_graph_ready_step_gives_bit_identical_weights_and_totals_to_the_eager_step() -> None:
    eager, eager_schedule = parts_and_schedule(12)
    graph_ready, graph_schedule = parts_and_schedule(12)
    graphed = GraphedStep(graph_ready, warmup=2, capture=False)
    learning_rates_read = []
    graph_ready.optimizer.register_step_pre_hook(
        lambda optimizer, args, kwargs: learning_rates_read.append(type(optimizer.param_groups[0]["lr"])))
    eager_totals = train(lambda x, y: train_step(eager, x, y), eager, eager_schedule)
    graphed_totals = train(graphed, graph_ready, graph_schedule)
    assert learning_rates_read == [torch.Tensor] * 12  # warm-up, replayed and smaller batches: one update kernel
    assert graphed.images.shape == (8, 3, 8, 8)  # recorded after the warm-up steps; the batches of 5 ran eagerly
    assert len({float(g["lr"]) for g in graph_ready.optimizer.param_groups}) == 1  # plain numbers again after each step
    assert all(torch.equal(a, b) for a, b in zip(eager_totals, graphed_totals))
    weights, graph_weights = eager.forward.state_dict(), graph_ready.forward.state_dict()
    assert all(torch.equal(weights[k], graph_weights[k]) for k in weights)
    momentum = [eager.optimizer.state[p]["momentum_buffer"] for p in eager.forward.parameters()]
    graph_momentum = [graph_ready.optimizer.state[p]["momentum_buffer"] for p in graph_ready.forward.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(momentum, graph_momentum))


def test_a_failed_capture_costs_no_step_the_run_goes_on_eagerly_with_the_same_numbers(monkeypatch) -> None:
    attempts, told = [], []

    class RefusedCapture:  # as CUDA refuses an operation it cannot record: before anything is computed
        def __init__(self, graph, **options) -> None:
            attempts.append(options)

        def __enter__(self):
            raise RuntimeError("operation not permitted when stream is capturing\nmore detail")

        def __exit__(self, *exc) -> None:
            return None

    monkeypatch.setattr(torch.cuda, "CUDAGraph", lambda: object())
    monkeypatch.setattr(torch.cuda, "graph", RefusedCapture)
    eager, eager_schedule = parts_and_schedule(12)
    graph_ready, graph_schedule = parts_and_schedule(12)
    graphed = GraphedStep(graph_ready, warmup=0, on_failure=told.append)  # warm-up 0: no side stream on the CPU
    eager_totals = train(lambda x, y: train_step(eager, x, y), eager, eager_schedule)
    graphed_totals = train(graphed, graph_ready, graph_schedule)
    assert attempts == [{"capture_error_mode": "thread_local"}]  # tried once, then eager for good
    assert told == ["RuntimeError: operation not permitted when stream is capturing"]
    assert graphed.failure == told[0] and graphed.graph is None
    assert all(isinstance(g["lr"], float) for g in graph_ready.optimizer.param_groups)
    assert all(torch.equal(a, b) for a, b in zip(eager_totals, graphed_totals))
    weights, graph_weights = eager.forward.state_dict(), graph_ready.forward.state_dict()
    assert all(torch.equal(weights[k], graph_weights[k]) for k in weights)


def test_the_step_reads_nothing_to_the_host(monkeypatch) -> None:
    parts, _ = parts_and_schedule(12)
    reads = []
    for name in ("tolist", "item", "__float__", "__bool__", "__int__"):
        real = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda t, *a, real=real, name=name: (reads.append(name), real(t, *a))[1])
    images, labels = batches()[0]
    totals = train_step(parts, images, labels)
    monkeypatch.undo()
    assert reads == []
    assert totals.shape == (3,) and totals[2].item() == 8


@pytest.mark.parametrize(("device", "overrides", "reason"), [
    ("cpu", {}, "not a CUDA GPU"),
    ("cuda", {"optimizer": "adam"}, "not SGD"),
    ("cuda", {"precision": "fp16"}, "fp16 loss scaling"),
    ("cuda", {"world_size": 2}, "several processes"),
    ("cuda", {"compiled": True}, "torch.compile"),
    ("cuda", {}, None),
])
def test_graphs_are_used_on_cuda_unless_something_in_the_run_rules_them_out(device, overrides, reason) -> None:
    settings = {"optimizer": "sgd", "precision": "bf16", "world_size": 1, "compiled": False, **overrides}
    why = graphs_unsupported(torch.device(device), **settings)
    assert (why is None) if reason is None else (reason in why)


def test_a_cpu_run_asking_for_graphs_trains_eagerly_and_records_the_setting(tmp_path) -> None:
    trainer = make_trainer(tmp_path / "run", cuda_graphs=True)
    trainer.run.close()
    assert trainer.graphed_step is None and trainer.config.cuda_graphs is True
    assert trainer.config.to_dict()["cuda_graphs"] is True  # written to config.yaml and every checkpoint


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_the_captured_step_follows_the_eager_step() -> None:
    """Both use the fused SGD update; the graph's replays match the eager steps to float rounding,
    the schedule's learning rate reaching every replay."""
    device = torch.device("cuda")

    def run(capture: bool) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = create_model("resnet20", num_classes=3).to(device)
        optimizer = create_optimizer(model, CONFIG, fused=True)
        parts = StepParts(model, nn.CrossEntropyLoss(label_smoothing=0.1), optimizer, nullcontext,
                          torch.amp.GradScaler("cuda", enabled=False))
        schedule = create_schedule(optimizer, CONFIG, 12, 6)
        step = GraphedStep(parts, warmup=2) if capture else (lambda x, y: train_step(parts, x, y))
        for images, labels in batches():
            step(images.to(device), labels.to(device))
            schedule.step()
        torch.cuda.synchronize()
        return {k: v.float().cpu() for k, v in model.state_dict().items()}

    eager, graphed = run(False), run(True)
    assert all(torch.allclose(eager[k], graphed[k], rtol=1e-4, atol=1e-5) for k in eager)


def test_a_checkpoint_saved_with_the_fused_gpu_update_resumes_with_the_cpu_update(tmp_path) -> None:
    """A run started on a GPU (fused SGD in its optimizer state) may resume on a CPU, and the other
    way round: the device decides the update rule, not the saved groups."""
    trainer = make_trainer(tmp_path / "run")
    checkpoint = trainer.as_checkpoint()
    for group in checkpoint["optimizer"]["param_groups"]:
        group["fused"] = True  # as a CUDA run saves it
    trainer.restore(checkpoint)
    trainer.run.close()
    assert {group["fused"] for group in trainer.optimizer.param_groups} == {None}


class SyncingLoss(nn.CrossEntropyLoss):
    """A loss that reads a value to the host, as no graph can record: capture fails on it."""

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = super().forward(logits, labels)
        loss.item()
        return loss


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_a_refused_capture_leaves_the_device_usable_and_the_run_eager() -> None:
    device, told = torch.device("cuda"), []

    def run(graphed: bool) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = create_model("resnet20", num_classes=3).to(device)
        optimizer = create_optimizer(model, CONFIG, fused=True)
        parts = StepParts(model, SyncingLoss(), optimizer, nullcontext, torch.amp.GradScaler("cuda", enabled=False))
        schedule = create_schedule(optimizer, CONFIG, 12, 6)
        step = GraphedStep(parts, warmup=2, on_failure=told.append) if graphed else GraphedStep(parts, warmup=2, capture=False)
        for images, labels in batches():
            step(images.to(device), labels.to(device))
            schedule.step()
        torch.cuda.synchronize()
        assert (step.failure is not None) == graphed
        return {k: v.float().cpu() for k, v in model.state_dict().items()}

    eager, after_refusal = run(False), run(True)
    assert len(told) == 1
    assert all(torch.allclose(eager[k], after_refusal[k], rtol=1e-4, atol=1e-5) for k in eager)


def test_full_batches_of_a_new_image_size_are_recorded_anew_with_the_same_numbers_as_eager_steps() -> None:
    """Progressive resizing: after 8x8 images come 6x6 ones; the graph-ready step warms up and
    records again at the new size instead of running every later step eagerly."""
    gen = torch.Generator().manual_seed(2)
    stream = [(torch.randn(8, 3, side, side, generator=gen), torch.randint(0, 3, (8,), generator=gen)) for side in (8,) * 4 + (6,) * 5]
    eager, eager_schedule = parts_and_schedule(9)
    graph_ready, graph_schedule = parts_and_schedule(9)
    graphed = GraphedStep(graph_ready, warmup=2, capture=False)
    shapes, eager_totals, graphed_totals = [], [], []
    for images, labels in stream:
        eager_totals.append(train_step(eager, images, labels))
        eager_schedule.step()
        graphed_totals.append(graphed(images, labels))
        graph_schedule.step()
        shapes.append(None if graphed.images is None else tuple(graphed.images.shape[2:]))
    assert shapes == [None, None, (8, 8), (8, 8), None, None, (6, 6), (6, 6), (6, 6)]  # 2 warm-up steps at each size
    assert all(torch.equal(a, b) for a, b in zip(eager_totals, graphed_totals))
    weights, graph_weights = eager.forward.state_dict(), graph_ready.forward.state_dict()
    assert all(torch.equal(weights[k], graph_weights[k]) for k in weights)
