"""``RunLog``: what a run tells while it trains, through one object.

The run's lines (train.log and the console: ``RunFolder.open_log``), each epoch's row as
TensorBoard scalars (when tensorboard is installed, in the main process) and the progress bars
(on a terminal, unless quiet, in the main process). A process that writes no run folder, or a
machine without tensorboard, gets ``tensorboard = None``: the one thing checked before a scalar.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from resnetlab.progress import progress_bar
from resnetlab.runs import METRICS_COLUMNS

SCALARS = METRICS_COLUMNS[2:]  # every metrics.csv column but the epoch and iteration, which place them


class RunLog:
    """A run's logger, TensorBoard writer (None: none) and progress bars."""

    def __init__(self, log: logging.Logger, *, tensorboard_dir: Path | None, shows_progress: bool) -> None:
        self.log = log
        self.tensorboard = tensorboard_writer(tensorboard_dir) if tensorboard_dir is not None else None
        self.shows_progress = shows_progress

    def info(self, line: str) -> None:
        self.log.info(line)

    def warning(self, line: str) -> None:
        self.log.warning(line)

    def epoch(self, row: dict[str, Any], epochs: int) -> None:
        """An epoch's metrics row: its line in the log, its scalars in TensorBoard."""
        self.log.info(epoch_line(row, epochs))
        if self.tensorboard is None:
            return
        for key in SCALARS:
            if isinstance(row.get(key), float) and math.isfinite(row[key]):
                self.tensorboard.add_scalar(key, row[key], row["iteration"])
        self.tensorboard.flush()

    def bar(self, *, total: int, initial: int, desc: str) -> Any:
        """A training epoch's progress bar (``progress.progress_bar``: none off a terminal or notebook)."""
        return progress_bar(total=total, initial=initial, unit="batch", desc=desc, leave=False, dynamic_ncols=True,
                            disable=None if self.shows_progress else True)

    @property
    def evaluation_progress(self) -> str | None:
        """The label of an evaluation pass's bar (``loader_logits``), None for none."""
        return "evaluating" if self.shows_progress else None

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
            self.tensorboard = None


def tensorboard_writer(folder: Path) -> Any:
    """A SummaryWriter on ``folder`` (the run's tb/), None when tensorboard is not installed (an optional extra)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(folder))


def epoch_line(row: dict[str, Any], epochs: int) -> str:
    views = f" ({row['test_views']} views)" if row.get("test_views", 1) > 1 else ""
    val = f"  val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f}" if not math.isnan(row["val_acc"]) else ""
    return (f"epoch {row['epoch']}/{epochs}  iter {row['iteration']}  lr {epoch_lr(row)}  "
            f"train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}{val}  "
            f"test loss {row['test_loss']:.4f} acc {row['test_acc']:.4f}{views}  "
            f"{row['epoch_seconds']:.1f}s  {row['images_per_second']:.0f} img/s")


def epoch_lr(row: dict[str, Any]) -> str:
    """The learning rate the epoch trained at ("0.1"), or its range ("0.1 to 0.01"); metrics.csv's
    ``lr`` is the rate after the epoch's last step, the next epoch's first."""
    first, last = row.get("epoch_lr") or (None, None)
    if first is None:
        return f"{row['lr']:.4g}"
    return f"{first:.4g}" if f"{first:.4g}" == f"{last:.4g}" else f"{first:.4g} to {last:.4g}"
