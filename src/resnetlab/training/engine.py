"""The training step loop (``train_one_epoch``) and its running totals; evaluation is ``evaluation.logits``."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from resnetlab.errors import ResnetlabError

if TYPE_CHECKING:
    pass


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

    @property
    def loss(self) -> float:
        return self.loss_sum / self.images if self.images else float("nan")

    @property
    def acc(self) -> float:
        return self.correct / self.images if self.images else float("nan")

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0


@dataclass
class StepResult:
    """What one optimizer step reports to the loop's callback."""

    iteration: int  # optimizer steps done, this one included
    totals: torch.Tensor  # (3,) on the training device: loss sum, correct, images of this global batch
    read_back: bool  # this step's totals (and all before) were just read to the host: every process synced here

    @property
    def error(self) -> float:
        """Training error (fraction) of this batch. Reading it waits for the device: ask only when needed."""
        _, correct, n = self.totals.tolist()
        return 1 - correct / n


Reduce = Callable[[torch.Tensor], torch.Tensor]


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    schedule: Any,
    *,
    criterion: nn.Module,
    stats: EpochStats,
    iteration: int,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
    scaler: torch.amp.GradScaler | None = None,
    reduce: Reduce | None = None,
    after_step: Callable[[StepResult], bool] | None = None,
    check_every: Callable[[], int] | int = 1,
) -> int:
    """Train over ``batches`` (one step each) and return the iteration count reached.

    ``schedule.step()`` runs after every optimizer step. ``reduce`` sums a small tensor over
    processes (distributed runs), so every process sees the same global loss and error.
    ``after_step`` returning True stops early (interrupt, iteration budget).

    Each step's totals stay on the device; every ``check_every`` steps (and at the end) they are
    read to the host in one go, checked for a non-finite loss (before the latest step updates the
    weights) and added to ``stats`` in step order, so the sums do not depend on ``check_every``.
    With 1 a non-finite loss never reaches the weights; above 1 up to that many steps may, and
    the error is raised at the check, before anything is saved.
    """
    scaler = scaler or torch.amp.GradScaler("cpu", enabled=False)
    pending: list[torch.Tensor] = []  # totals of the steps not yet read back, in order
    mark = time.perf_counter()
    for images, labels in batches:
        with autocast():
            logits = model(images)
            loss = criterion(logits, labels)
        totals = torch.stack([loss.detach().float() * len(labels), (logits.argmax(1) == labels).sum().float(),
                              torch.tensor(float(len(labels)), device=loss.device)])
        totals = reduce(totals) if reduce else totals
        pending.append(totals)
        read_back = len(pending) >= (check_every() if callable(check_every) else check_every)
        if read_back:
            add_totals(stats, pending, iteration - len(pending) + 2)  # this step is iteration + 1
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        schedule.step()
        iteration += 1
        now = time.perf_counter()
        stats.seconds += now - mark
        stop = after_step(StepResult(iteration, totals, read_back)) if after_step else False
        mark = time.perf_counter()
        if stop:
            break
    add_totals(stats, pending, iteration - len(pending) + 1)
    return iteration


def add_totals(stats: EpochStats, pending: list[torch.Tensor], first_iteration: int) -> None:
    """Read the (3,) totals of consecutive steps (the first is step ``first_iteration``, counted
    from 1) to the host with one sync, refuse a non-finite loss, add them to ``stats``; empties ``pending``."""
    if not pending:
        return
    for i, (loss_sum, correct, n) in enumerate(torch.stack(pending).tolist()):
        if not math.isfinite(loss_sum):
            raise NonFiniteLoss(f"the training loss became {loss_sum / n} at iteration {first_iteration + i}")
        stats.loss_sum, stats.correct, stats.images = stats.loss_sum + loss_sum, stats.correct + correct, stats.images + int(n)
    pending.clear()
