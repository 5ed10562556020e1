"""run_log.py: a run's lines, TensorBoard scalars and progress bars, through one object."""

from __future__ import annotations

import logging
import math

import pytest

from resnetlab.training.run_log import SCALARS, RunLog, epoch_line

ROW = {"epoch": 2, "iteration": 12, "lr": 0.1, "train_loss": 1.5, "train_acc": 0.4, "val_loss": math.nan,
       "val_acc": math.nan, "test_loss": 1.25, "test_acc": 0.5, "epoch_seconds": 3.0, "images_per_second": 16.0,
       "eval_seconds": 0.5, "test_views": 1}


def test_an_epoch_is_one_line_and_its_finite_scalars(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("torch.utils.tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = RunLog(logging.getLogger("resnetlab.test_run_log"), tensorboard_dir=tmp_path / "tb", shows_progress=False)
    with caplog.at_level(logging.INFO, logger="resnetlab.test_run_log"):
        log.epoch(ROW, epochs=3)
    log.close()
    assert caplog.messages == [epoch_line(ROW, 3)] and caplog.messages[0].startswith("epoch 2/3  iter 12  lr 0.1  ")
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert sorted(events.Tags()["scalars"]) == sorted(k for k in SCALARS if isinstance(ROW[k], float) and math.isfinite(ROW[k]))
    assert [(e.step, e.value) for e in events.Scalars("test_acc")] == [(12, 0.5)]


def test_without_a_folder_there_is_no_tensorboard_and_quiet_shows_no_bar(tmp_path) -> None:
    log = RunLog(logging.getLogger("resnetlab.test_run_log"), tensorboard_dir=None, shows_progress=False)
    log.epoch(ROW, epochs=3)
    assert log.tensorboard is None and log.evaluation_progress is None and log.bar(total=5, initial=0, desc="x").disable
    assert RunLog(log.log, tensorboard_dir=None, shows_progress=True).evaluation_progress == "evaluating"
    assert not list(tmp_path.iterdir())
