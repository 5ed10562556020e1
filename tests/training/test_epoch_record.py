"""What a run writes says what happened: the epoch's own lr, numbers without float noise, its split."""

from __future__ import annotations

import csv
from dataclasses import replace

from resnetlab.reports.tables import csv_value
from resnetlab.training import resolve_config
from resnetlab.training.run import describe_data, train
from resnetlab.training.run_log import epoch_line
from tests.builders import make_tiny_bundle, tiny_config

ROW = {"epoch": 2, "iteration": 12, "lr": 0.010000000000000002, "train_loss": 0.5, "train_acc": 0.7, "val_loss": float("nan"),
       "val_acc": float("nan"), "test_loss": 0.4, "test_acc": 0.8, "epoch_seconds": 1.0, "images_per_second": 48.0}


def test_the_epoch_line_shows_the_rate_the_epoch_trained_at() -> None:
    assert "  lr 0.1  " in epoch_line({**ROW, "epoch_lr": [0.1, 0.1]}, 3)  # not the 0.01 after its last step
    assert "  lr 0.1 to 0.01  " in epoch_line({**ROW, "epoch_lr": [0.1, 0.010000000000000002]}, 3)
    assert "  lr 0.01  " in epoch_line(ROW, 3)  # a row from a checkpoint written before: the rate it kept


def test_metrics_and_results_are_written_without_float_noise(tmp_path) -> None:
    train(tiny_config(tmp_path / "run", epochs=2, milestones=[0.5]), bundle=make_tiny_bundle())
    with (tmp_path / "run" / "metrics.csv").open(newline="") as f:
        assert [row["lr"] for row in csv.DictReader(f)] == ["0.005", "0.005"]  # 0.05 * 0.1, written as it means
    assert csv_value("test_error_pct", 34.209999999999994) == 34.21 and csv_value("train_seconds", 12.345) == 12.3


def test_the_split_is_said_when_training_starts() -> None:
    bundle = make_tiny_bundle()
    config = resolve_config(overrides={"val_split": 0.25, "seed": 3})
    held = replace(bundle, val=bundle.test)
    assert describe_data(config, held) == ("data tiny at memory: 3 classes, train 48, val 24, test 24 images; "
                                           "val held out of train by val_split 0.25, seed 3")
