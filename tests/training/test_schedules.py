"""Learning-rate schedules: the paper's values, scaling to --epochs, and the error warm-up."""

from __future__ import annotations

import pytest
import torch

from resnetlab.training import resolve_config
from resnetlab.training.schedules import create_schedule


def lrs_at(config, iterations, total, iters_per_epoch=391):
    """The lr the optimizer holds at each of ``iterations`` (0-based optimizer steps): one real
    step from the iteration before, after restoring the schedule there as a resumed run does."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=config.lr)
    schedule = create_schedule(optimizer, config, total, iters_per_epoch)
    seen = {0: optimizer.param_groups[0]["lr"]} if 0 in iterations else {}
    for i in sorted(set(iterations) - {0}):
        state = schedule.state_dict()
        state["scheduler"]["last_epoch"] = i - 1
        schedule.load_state_dict(state)
        optimizer.step()
        schedule.step()
        seen[i] = optimizer.param_groups[0]["lr"]
    return seen


def test_paper_schedule_values():
    config = resolve_config("paper")
    lrs = lrs_at(config, {0, 31_999, 32_000, 47_999, 48_000, 63_999}, total=64_000)
    assert lrs[0] == pytest.approx(0.1) and lrs[31_999] == pytest.approx(0.1)
    assert lrs[32_000] == pytest.approx(0.01) and lrs[47_999] == pytest.approx(0.01)
    assert lrs[48_000] == pytest.approx(0.001) and lrs[63_999] == pytest.approx(0.001)


def test_paper_schedule_scales_to_epochs():
    config = resolve_config("paper", overrides={"epochs": 10})
    lrs = lrs_at(config, {0, 499, 500, 749, 750}, total=1000, iters_per_epoch=100)
    assert [round(lrs[i], 6) for i in (0, 499, 500, 749, 750)] == [0.1, 0.1, 0.01, 0.01, 0.001]


def test_epoch_unit_changes_only_at_epoch_boundaries():
    config = resolve_config("paper", overrides={"schedule": "cosine", "schedule_unit": "epochs", "epochs": 4})
    lrs = lrs_at(config, {0, 9, 10, 19}, total=40, iters_per_epoch=10)
    assert lrs[0] == lrs[9] == pytest.approx(0.1) and lrs[10] == lrs[19] < 0.1


def test_linear_schedule_warms_up_then_decays_to_zero():
    config = resolve_config("fast", overrides={"warmup": 10, "lr": 1.0})
    assert config.schedule == "linear"
    lrs = lrs_at(config, {0, 9, 10, 55, 99}, total=100)
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[55] == pytest.approx(0.5) and lrs[99] == pytest.approx(1 / 90)


def test_error_warmup_switches_back_to_the_schedule():
    config = resolve_config("paper", overrides={"model": "resnet110"})
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=config.lr)
    schedule = create_schedule(optimizer, config, 64_000, 391)
    lr = lambda: optimizer.param_groups[0]["lr"]  # noqa: E731
    assert lr() == pytest.approx(0.01)
    for _ in range(50):  # error stays at 90%: warm-up continues
        schedule.error_warmup.observe(0.9)
        optimizer.step()
        schedule.step()
    assert lr() == pytest.approx(0.01)
    while schedule.error_warmup.active:  # error falls to 50%: back to 0.1
        schedule.error_warmup.observe(0.5)
        optimizer.step()
        schedule.step()
    assert lr() == pytest.approx(0.1)
    for _ in range(50):  # and it stays there, even if the error rises again
        schedule.error_warmup.observe(0.95)
        optimizer.step()
        schedule.step()
    assert lr() == pytest.approx(0.1)


def test_error_warmup_switches_back_during_training(tmp_path, bundle):
    """The real loop: lr 0.001 while the training error is high, then the recipe's 0.05 again."""
    from resnetlab.runs import read_metrics
    from resnetlab.training import train
    from tests.builders import tiny_config

    out = tmp_path / "run"
    config = tiny_config(out, epochs=4, milestones=[], error_warmup_lr=0.001, error_warmup_threshold=0.6)
    train(config, bundle=bundle)
    assert "error warm-up over" in (out / "train.log").read_text()
    assert float(read_metrics(out / "metrics.csv")[-1]["lr"]) == pytest.approx(0.05)
