"""Learning-rate schedules as one ``LambdaLR`` stepped after every optimizer step.

Everything is computed in iterations: ``lr(i)`` is the learning rate of the i-th optimizer step
(0-based). Milestones and warm-up below 1 are fractions of the run's budget, others are counts
in ``schedule_unit``; with ``schedule_unit: epochs`` the lr only changes at epoch boundaries.
The paper recipe (milestones 0.5 and 0.75 of 64k iterations) gives lr 0.1 for iterations
0..31,999, 0.01 from 32,000 and 0.001 from 48,000.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR

from resnetlab.training.config import TrainConfig

# shape(i, total, warmup, milestones, decay) -> multiplier of the peak lr, after any warm-up
Shape = Callable[[int, int, int, list[int], float], float]


def _multistep(i: int, total: int, warmup: int, milestones: list[int], decay: float) -> float:
    return decay ** sum(i >= m for m in milestones)


def _cosine(i: int, total: int, warmup: int, milestones: list[int], decay: float) -> float:
    progress = (i - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _linear_decay(i: int, total: int, warmup: int, milestones: list[int], decay: float) -> float:
    return max(0.0, 1.0 - (i - warmup) / max(1, total - warmup))


SHAPES: dict[str, Shape] = {"multistep": _multistep, "cosine": _cosine, "linear": _linear_decay}


class ErrorWarmup:
    """He et al. 2016 for ResNet-110/1202: a small lr until the training error falls below a
    threshold, then the schedule's own lr again (this switch back is the point; a popular
    reproduction never makes it). The error is a running average over recent batches."""

    smoothing = 0.9  # weight of the previous average: about the last 10 batches

    def __init__(self, factor: float, threshold: float) -> None:
        self.factor = factor  # warm-up lr / peak lr
        self.threshold = threshold
        self.active = True
        self.error: float | None = None

    def observe(self, batch_error: float) -> bool:
        """Feed one batch's training error; True when this ends the warm-up."""
        if not self.active:
            return False
        self.error = batch_error if self.error is None else self.smoothing * self.error + (1 - self.smoothing) * batch_error
        self.active = self.error >= self.threshold
        return not self.active

    def state_dict(self) -> dict[str, Any]:
        return {"active": self.active, "error": self.error}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.active, self.error = state["active"], state["error"]


@dataclass
class Schedule:
    """The per-iteration scheduler plus the optional error warm-up it consults."""

    scheduler: LambdaLR
    error_warmup: ErrorWarmup | None
    total_iters: int

    def step(self) -> None:
        self.scheduler.step()

    @property
    def lr(self) -> float:
        return self.scheduler.get_last_lr()[0]

    def state_dict(self) -> dict[str, Any]:
        state = {k: v for k, v in self.scheduler.state_dict().items() if k != "lr_lambdas"}
        return {"scheduler": state, "error_warmup": self.error_warmup.state_dict() if self.error_warmup else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict({**state["scheduler"], "lr_lambdas": [None] * len(self.scheduler.lr_lambdas)})
        if self.error_warmup and state.get("error_warmup"):
            self.error_warmup.load_state_dict(state["error_warmup"])
        # get_last_lr must reflect the restored iteration (and warm-up state) before the next step
        lrs = [base * self.scheduler.lr_lambdas[0](self.scheduler.last_epoch) for base in self.scheduler.base_lrs]
        for group, lr in zip(self.scheduler.optimizer.param_groups, lrs):
            group["lr"] = lr
        self.scheduler._last_lr = lrs


def to_iterations(value: float, total_iters: int, iters_per_epoch: int, unit: str) -> int:
    """A milestone or warm-up length: fraction of the budget (<1) or a count in ``unit``."""
    if value < 1:
        return round(value * total_iters)
    return round(value * (iters_per_epoch if unit == "epochs" else 1))


def lr_multiplier(config: TrainConfig, total_iters: int, iters_per_epoch: int) -> Callable[[int], float]:
    """``i -> lr(i) / peak lr`` for the configured shape, warm-up and schedule unit."""
    shape = SHAPES[config.schedule]
    warmup = to_iterations(config.warmup, total_iters, iters_per_epoch, config.schedule_unit)
    milestones = [to_iterations(m, total_iters, iters_per_epoch, config.schedule_unit) for m in config.milestones]

    def multiplier(i: int) -> float:
        if config.schedule_unit == "epochs":
            i = (i // iters_per_epoch) * iters_per_epoch  # value at the start of the epoch
        if i < warmup:
            return (i + 1) / warmup
        return shape(i, total_iters, warmup, milestones, config.lr_decay)

    return multiplier


def create_schedule(optimizer: torch.optim.Optimizer, config: TrainConfig, total_iters: int, iters_per_epoch: int) -> Schedule:
    """A ``Schedule`` for ``optimizer``; lr(0) is already set when this returns."""
    base = lr_multiplier(config, total_iters, iters_per_epoch)
    warmup = None
    if config.error_warmup_lr is not None and config.lr > 0:
        warmup = ErrorWarmup(config.error_warmup_lr / config.lr, config.error_warmup_threshold)

    def multiplier(i: int) -> float:
        return warmup.factor if warmup is not None and warmup.active else base(i)

    return Schedule(LambdaLR(optimizer, multiplier), warmup, total_iters)
