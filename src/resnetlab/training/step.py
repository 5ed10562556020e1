"""One training step, as a function a CUDA graph can capture whole, and an epoch's running totals.

``train_step`` is forward, loss, backward and the optimizer update, and returns the batch's
totals on the device without reading anything to the host: on a GPU the host only queues work.
``GraphedStep`` records it once as a CUDA graph and replays it (one launch instead of hundreds).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from resnetlab.errors import ResnetlabError
from resnetlab.evaluation.metrics import classification_totals


class NonFiniteLoss(ResnetlabError):
    """The training loss became NaN or infinite: the run stops before anything more is saved."""


@dataclass
class EpochStats:
    """Running training totals of one epoch, summed over all processes (saved in checkpoints
    mid-epoch, so a resumed epoch reports exactly what an uninterrupted one would)."""

    loss_sum: float = 0.0  # sum over images of the per-image loss
    correct: float = 0.0  # images classified correctly
    images: int = 0  # images seen
    seconds: float = 0.0  # training wall time (data + step), evaluation excluded
    first_lr: float | None = None  # the learning rate of the epoch's first step
    last_lr: float | None = None  # ... and of its last (the epoch line shows the range)

    def stepped_at(self, lr: float) -> None:
        """Note the learning rate a step of this epoch trained at."""
        self.first_lr = lr if self.first_lr is None else self.first_lr
        self.last_lr = lr

    @property
    def loss(self) -> float:
        return self.loss_sum / self.images if self.images else float("nan")

    @property
    def acc(self) -> float:
        return self.correct / self.images if self.images else float("nan")

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0

    def add(self, pending: list[torch.Tensor], first_iteration: int) -> None:
        """Read the (3,) totals of consecutive steps (the first is step ``first_iteration``, counted
        from 1) to the host with one sync, refuse a non-finite loss, add them; empties ``pending``."""
        if not pending:
            return
        for i, (loss_sum, correct, n) in enumerate(torch.stack(pending).tolist()):
            if not math.isfinite(loss_sum):
                raise NonFiniteLoss(f"the training loss became {loss_sum / n} at iteration {first_iteration + i}")
            self.loss_sum, self.correct, self.images = self.loss_sum + loss_sum, self.correct + correct, self.images + int(n)
        pending.clear()


@dataclass
class StepParts:
    """What one step touches: the module that runs batches, the loss, the update and its precision."""

    forward: nn.Module  # the model, wrapped in DDP and/or torch.compile where asked
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    autocast: Callable[[], AbstractContextManager]
    scaler: torch.amp.GradScaler


def train_step(parts: StepParts, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """One optimizer step on one batch; returns its (loss sum, correct, images) totals on the device.

    Nothing here reads a tensor to the host, so a GPU never waits for the CPU, and the whole
    function can be captured as a CUDA graph. The learning rate is whatever the optimizer's
    groups hold (the schedule sets it between steps)."""
    with parts.autocast():
        logits = parts.forward(images)
        loss = parts.criterion(logits, labels)
    totals = classification_totals(logits.detach(), labels, mean_loss=loss.detach())
    parts.optimizer.zero_grad(set_to_none=True)
    parts.scaler.scale(loss).backward()
    parts.scaler.step(parts.optimizer)
    parts.scaler.update()
    return totals


class GraphedStep:
    """``train_step`` recorded once as a CUDA graph and replayed for every batch of one shape (recorded
    again when full batches change image size, as progressive resizing does); the
    ``warmup`` steps before it, batches of another shape and every step after a failed capture
    (``on_failure`` is told why) run eagerly through the same learning-rate tensors, so a graphed
    run's numbers are an eager run's. Why each part is so: docs/gpu.md, "The training step as a
    CUDA graph". ``capture=False`` runs the static buffers through the eager step instead of a
    graph: how the CPU tests check the plumbing.
    """

    def __init__(self, parts: StepParts, *, warmup: int = 3, capture: bool = True,
                 on_failure: Callable[[str], None] | None = None) -> None:
        self.parts = parts
        self.warmup = warmup
        self.capture = capture
        self.on_failure = on_failure
        self.failure: str | None = None  # why capture failed; eager steps ever since
        self.warm_steps = 0
        self.largest = 0  # the largest batch met before recording: the one a graph is recorded for
        self.graph: torch.cuda.CUDAGraph | None = None
        self.images: torch.Tensor | None = None  # the captured batch's static buffers
        self.labels: torch.Tensor | None = None
        self.totals: torch.Tensor | None = None
        self.lr_tensors: list[torch.Tensor] = []

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.fill_learning_rates(images.device)
        if self.images is not None and len(images) == self.largest and images.shape[1:] != self.images.shape[1:]:
            self.release()  # full batches of a new image size (progressive resizing): recorded anew for it
        if self.failure is None and self.images is None:
            size = len(images)
            if size > self.largest:  # warm up at the batch size that will be recorded
                self.largest, self.warm_steps = size, 0
            if size == self.largest:  # a smaller batch (an epoch's last) is never the one recorded
                if self.warm_steps < self.warmup:
                    self.warm_steps += 1
                    return self.warm_step(images, labels)
                try:
                    self.record(images, labels)
                except RuntimeError as exc:
                    self.give_up(exc)
        if self.images is not None and images.shape == self.images.shape and labels.shape == self.labels.shape:
            return self.replay(images, labels)
        with self.learning_rates_on_device():  # another shape, or no graph: eager, the same code
            return train_step(self.parts, images, labels)

    def fill_learning_rates(self, device: torch.device) -> None:
        """The schedule's current learning rates into the device tensors the update reads."""
        groups = self.parts.optimizer.param_groups
        if not self.lr_tensors:
            self.lr_tensors = [torch.zeros((), dtype=torch.float32, device=device) for _ in groups]
        for group, lr in zip(groups, self.lr_tensors):
            lr.fill_(group["lr"])

    def warm_step(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with self.learning_rates_on_device():
            if not self.capture:
                return train_step(self.parts, images, labels)
            side = torch.cuda.Stream()  # cuDNN's algorithm search and the momentum buffers happen here, not in capture
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                totals = train_step(self.parts, images, labels)
            torch.cuda.current_stream().wait_stream(side)
            return totals

    def record(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Static buffers of ``images``' shape and the graph of one step on them."""
        self.images, self.labels = torch.empty_like(images), torch.empty_like(labels)
        if not self.capture:
            return
        self.images.copy_(images)
        self.labels.copy_(labels)
        self.graph = torch.cuda.CUDAGraph()
        self.parts.optimizer.zero_grad(set_to_none=True)  # gradients are then written, not added, by the graph
        with self.learning_rates_on_device():
            # thread_local: a streaming loader's pinned-memory thread may allocate while this records
            with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
                self.totals = train_step(self.parts, self.images, self.labels)

    def release(self) -> None:
        """Forget the recorded graph and its buffers (its memory pool goes with it); the next full
        batches warm up and record again."""
        self.graph = self.images = self.labels = self.totals = None
        self.warm_steps = 0

    def give_up(self, exc: RuntimeError) -> None:
        """After a failed capture: drop what it left (gradients from its memory pool, the static
        buffers), say why; this batch and every later one then train eagerly."""
        self.failure = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        self.graph = self.images = self.labels = self.totals = None
        self.parts.optimizer.zero_grad(set_to_none=True)
        if self.on_failure is not None:
            self.on_failure(self.failure)

    def replay(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The recorded step on ``images``, copied into the static buffers."""
        self.images.copy_(images, non_blocking=True)
        self.labels.copy_(labels, non_blocking=True)
        if self.graph is None:
            with self.learning_rates_on_device():
                return train_step(self.parts, self.images, self.labels)
        self.graph.replay()
        return self.totals.clone()  # the next replay overwrites the static totals

    @contextmanager
    def learning_rates_on_device(self) -> Iterator[None]:
        """The optimizer reads ``lr_tensors`` inside the block; the schedule and checkpoints keep numbers."""
        groups = self.parts.optimizer.param_groups
        numbers = [g["lr"] for g in groups]
        for group, lr in zip(groups, self.lr_tensors):
            group["lr"] = lr
        try:
            yield
        finally:
            for group, lr in zip(groups, numbers):
                group["lr"] = lr


def graphs_unsupported(device: torch.device, *, optimizer: str, precision: str, world_size: int, compiled: bool) -> str | None:
    """Why this run's step cannot be a CUDA graph (None: it can)."""
    reasons = {
        "the device is not a CUDA GPU": device.type != "cuda",
        "the optimizer is not SGD (its fused update reads the learning rate from the device)": optimizer != "sgd",
        "fp16 loss scaling reads the gradients' finiteness on the host": precision == "fp16",
        "several processes (DDP's gradient hooks)": world_size > 1,
        "torch.compile (mode 'reduce-overhead' graphs on its own)": compiled,
    }
    return next((reason for reason, applies in reasons.items() if applies), None)
