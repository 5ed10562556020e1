"""The run folder: every file a finished or interrupted run leaves behind, and who writes it.

    config.yaml        resolved TrainConfig (a valid --config file)
    metrics.csv        one row per epoch (METRICS_COLUMNS; accuracies are fractions)
    summary.json       the dict ``train`` returns
    class_indices.json {"0": "airplane", ...}
    weights.pth        the final model's plain state_dict() (torch.load(..., weights_only=True))
    train.log          the console lines, plus warnings
    tb/                TensorBoard events (when tensorboard is installed)
    checkpoints/last.pt, checkpoints/best.pt

Only the main process writes (``RunFolder(..., writer=False)`` makes every method a no-op).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
import sys
from pathlib import Path
from typing import Any

from resnetlab.errors import ResnetlabError
from resnetlab.training.config import TrainConfig, save_config

METRICS_COLUMNS = ("epoch", "iteration", "lr", "train_loss", "train_acc", "val_loss", "val_acc",
                   "test_loss", "test_acc", "epoch_seconds", "images_per_second", "eval_seconds", "test_views")
RUN_FILES = ("config.yaml", "metrics.csv", "summary.json", "checkpoints", "weights.pth")


class RunFolder:
    """Paths and writers of one run folder."""

    def __init__(self, path: str | Path, *, writer: bool = True) -> None:
        self.path = Path(path)
        self.writer = writer
        self.last = self.path / "checkpoints" / "last.pt"
        self.best = self.path / "checkpoints" / "best.pt"
        self.metrics = self.path / "metrics.csv"
        self.log = logging.getLogger(f"resnetlab.train.{id(self)}")
        self._tb: Any = None

    def holds_run(self) -> bool:
        """Whether a run got far enough to leave something worth keeping here.

        An empty ``checkpoints/`` (left by a run that stopped at a wrong data path, say) is not a
        run: the corrected command must not ask for ``--overwrite``."""
        checkpoints = self.path / "checkpoints"
        if checkpoints.is_dir() and any(checkpoints.iterdir()):
            return True
        return any((self.path / name).is_file() for name in RUN_FILES if name != "checkpoints")

    def prepare(self, *, resume: bool, overwrite: bool) -> None:
        """Refuse to mix two runs in one folder; clear it with ``overwrite``.

        Only the main process judges a fresh folder: the others would see its first files."""
        if resume:
            if not self.last.is_file():
                raise ResnetlabError(f"cannot resume: {self.last} does not exist (start the run without --resume)")
            return
        if not self.writer:
            return
        if self.holds_run():
            if not overwrite:
                raise ResnetlabError(f"{self.path} already holds a run: pass --resume to continue it or --overwrite to replace it")
            for name in (*RUN_FILES, "train.log", "tb", "class_indices.json"):
                target = self.path / name
                shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
        (self.path / "checkpoints").mkdir(parents=True, exist_ok=True)

    def open_log(self, quiet: bool) -> logging.Logger:
        """A logger writing to train.log (main process) and, unless quiet, to stdout."""
        self.log.setLevel(logging.INFO)
        self.log.propagate = False
        if self.writer:
            file_handler = logging.FileHandler(self.path / "train.log")
            file_handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
            self.log.addHandler(file_handler)
            console = logging.StreamHandler(sys.stdout)
            console.setLevel(logging.WARNING if quiet else logging.INFO)
            self.log.addHandler(console)
        return self.log

    def close(self) -> None:
        for handler in list(self.log.handlers):
            handler.close()
            self.log.removeHandler(handler)
        if self._tb is not None:
            self._tb.close()

    def write_start(self, config: TrainConfig, classes: list[str]) -> None:
        if self.writer:
            save_config(config, self.path / "config.yaml")
            write_json(self.path / "class_indices.json", {str(i): name for i, name in enumerate(classes)})

    def truncate_metrics(self, completed_epochs: int) -> None:
        """On resume: drop rows of epochs the checkpoint has not completed."""
        if not (self.writer and self.metrics.is_file()):
            return
        rows = [r for r in read_metrics(self.metrics) if int(r["epoch"]) <= completed_epochs]
        self._write_rows(rows)

    def append_metrics(self, row: dict[str, Any]) -> None:
        if not self.writer:
            return
        new = not self.metrics.is_file()
        with self.metrics.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=METRICS_COLUMNS)
            if new:
                w.writeheader()
            w.writerow({k: _cell(row.get(k)) for k in METRICS_COLUMNS})
        self._tensorboard(row)

    def write_summary(self, summary: dict[str, Any]) -> None:
        if self.writer:
            write_json(self.path / "summary.json", summary)

    def _write_rows(self, rows: list[dict[str, str]]) -> None:
        with self.metrics.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=METRICS_COLUMNS)
            w.writeheader()
            w.writerows(rows)

    def _tensorboard(self, row: dict[str, Any]) -> None:
        """Scalars per epoch; silently skipped when tensorboard is not installed (optional extra)."""
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self._tb = False
                return
            self._tb = SummaryWriter(str(self.path / "tb"))
        if self._tb:
            for key in METRICS_COLUMNS[2:]:
                if isinstance(row.get(key), float) and math.isfinite(row[key]):
                    self._tb.add_scalar(key, row[key], row["iteration"])
            self._tb.flush()


def read_metrics(path: str | Path) -> list[dict[str, str]]:
    with Path(path).open(newline="") as f:
        return list(csv.DictReader(f))


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def _cell(value: Any) -> Any:
    """Empty cell for missing values (no validation split), full precision for floats."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(value) if isinstance(value, float) else value
