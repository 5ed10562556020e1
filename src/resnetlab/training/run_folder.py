"""The run folder: every file a finished or interrupted run leaves behind, and who writes it.

    config.yaml        resolved TrainConfig (a valid --config file)
    metrics.csv        one row per epoch (METRICS_COLUMNS; accuracies are fractions)
    summary.json       the dict ``train`` returns
    class_indices.json {"0": "airplane", ...}
    weights.pth        the final model's plain state_dict() (torch.load(..., weights_only=True))
    train.log          the console lines, plus warnings
    tb/                TensorBoard events (when tensorboard is installed)
    checkpoints/last.pt, checkpoints/best.pt
    run.lock           while a process writes here (see run_lock.py)

Only the main process writes (``RunFolder(..., writer=False)`` makes every method a no-op) and
holds the lock. ``--overwrite`` moves the old run's files into ``.replaced/`` and deletes them
only once the new run has started (its data read, its model built, its config written); a run
that fails before that, or dies, gets the old files back.
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
from resnetlab.files import WriteError, writing
from resnetlab.training.config import TrainConfig, save_config
from resnetlab.training.run_lock import LOCK_NAME, RunLock

METRICS_COLUMNS = ("epoch", "iteration", "lr", "train_loss", "train_acc", "val_loss", "val_acc",
                   "test_loss", "test_acc", "epoch_seconds", "images_per_second", "eval_seconds", "test_views")
RUN_FILES = ("config.yaml", "metrics.csv", "summary.json", "checkpoints", "weights.pth")
OWN_FILES = (*RUN_FILES, "train.log", "tb", "class_indices.json")  # everything a run writes
REPLACED = ".replaced"  # the old run's files while --overwrite replaces them
LEFTOVERS = ("checkpoints", "train.log", "tb", LOCK_NAME)  # what a run that failed to start leaves


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
        self._lock = RunLock(self.path)
        self._replaced: Path | None = None  # the old run's files until the new run has started

    def holds_run(self) -> bool:
        """Whether a run got far enough to leave something worth keeping here.

        An empty ``checkpoints/`` (left by a run that stopped at a wrong data path, say) is not a
        run: the corrected command must not ask for ``--overwrite``."""
        checkpoints = self.path / "checkpoints"
        if checkpoints.is_dir() and any(checkpoints.iterdir()):
            return True
        return any((self.path / name).is_file() for name in RUN_FILES if name != "checkpoints")

    def prepare(self, *, resume: bool, overwrite: bool) -> None:
        """Take the folder's lock; refuse to mix two runs in one folder or to write among the
        user's own files; move the old run aside with ``overwrite``.

        Only the main process judges a fresh folder: the others would see its first files."""
        if resume:
            if self.writer and self.path.is_dir():
                self._take_lock()
                self._restore_replaced()
            if not self.last.is_file():
                raise ResnetlabError(f"cannot resume: {self.last} does not exist (start the run without --resume)")
            return
        if not self.writer:
            return
        if self.path.exists() and not self.path.is_dir():
            raise WriteError(f"cannot write {self.path}: it is a file, not a folder (pass a folder to --out)")
        with writing(self.path):
            self.path.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        self._restore_replaced()
        if self.holds_run():
            if not overwrite:
                raise ResnetlabError(f"{self.path} already holds a run: continue it with 'resnetlab train --resume "
                                     f"{self.path}' or pass --overwrite to replace it")
            self._move_aside()
        else:
            self._refuse_other_files()
        with writing(self.path / "checkpoints"):
            (self.path / "checkpoints").mkdir(exist_ok=True)

    def readable(self, path: str | None) -> str | None:
        """Where a file the new run still reads (``init_from``) is while its old run is set aside."""
        if path is None or self._replaced is None:
            return path
        try:
            inside = Path(path).resolve().relative_to(self.path.resolve())
        except ValueError:
            return path
        if not inside.parts:
            return str(self._replaced)  # the run folder itself: its checkpoints/best.pt, set aside
        return str(self._replaced / inside) if inside.parts[0] in OWN_FILES else path

    def _take_lock(self) -> None:
        with writing(self._lock.path):
            self._lock.acquire()

    def _move_aside(self) -> None:
        """``--overwrite``: the old run's files go to ``.replaced/`` until the new run has started."""
        replaced = self.path / REPLACED
        with writing(replaced):
            replaced.mkdir()
            for name in OWN_FILES:
                if (self.path / name).exists():
                    (self.path / name).rename(replaced / name)
        self._replaced = replaced

    def _restore_replaced(self) -> None:
        """Put back a run that an ``--overwrite`` set aside and never replaced (it failed or died)."""
        replaced = self.path / REPLACED
        if not replaced.is_dir():
            return
        with writing(self.path):
            for name in OWN_FILES:
                if (replaced / name).exists():
                    _remove(self.path / name)
                    (replaced / name).rename(self.path / name)
            shutil.rmtree(replaced)
        self._replaced = None

    def _refuse_other_files(self) -> None:
        """A folder that is not a run may only hold what a run that failed to start leaves behind
        (and hidden files, .gitkeep say: a run writes none)."""
        others = sorted(p.name for p in self.path.iterdir() if p.name not in LEFTOVERS and not p.name.startswith("."))
        if others:
            shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
            raise ResnetlabError(f"{self.path} is not a run folder and holds other files ({shown}), which training "
                                 f"would mix with its own ({', '.join(OWN_FILES)}): pass a new or empty folder to --out")

    def open_log(self, quiet: bool) -> logging.Logger:
        """A logger writing to train.log (main process) and, unless quiet, to stdout."""
        self.log.setLevel(logging.INFO)
        self.log.propagate = False
        if self.writer:
            with writing(self.path / "train.log"):
                file_handler = _LogFile(self.path / "train.log")
            file_handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
            self.log.addHandler(file_handler)
            console = logging.StreamHandler(sys.stdout)
            console.setLevel(logging.WARNING if quiet else logging.INFO)
            self.log.addHandler(console)
        return self.log

    def close(self) -> None:
        """Close the log; give back an old run the new one never replaced; release the lock."""
        for handler in list(self.log.handlers):
            try:
                handler.close()
            except (OSError, WriteError):  # a full disk: the run already stops on that error
                pass
            self.log.removeHandler(handler)
        if self._tb is not None:
            self._tb.close()
        try:
            if self._replaced is not None:
                self._restore_replaced()
        finally:
            self._lock.release()

    def write_start(self, config: TrainConfig, classes: list[str]) -> None:
        """The run has started: its config and classes are written, the run it replaces is deleted."""
        if self.writer:
            with writing(self.path / "config.yaml"):
                save_config(config, self.path / "config.yaml")
            write_json(self.path / "class_indices.json", {str(i): name for i, name in enumerate(classes)})
            if self._replaced is not None:  # renamed first: a half-deleted old run is never restored
                shutil.rmtree(self.path / f"{REPLACED}.deleting", ignore_errors=True)
                doomed = self._replaced.rename(self.path / f"{REPLACED}.deleting")
                self._replaced = None
                shutil.rmtree(doomed, ignore_errors=True)

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
        with writing(self.metrics), self.metrics.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=METRICS_COLUMNS)
            if new:
                w.writeheader()
            w.writerow({k: _cell(row.get(k)) for k in METRICS_COLUMNS})
        self._tensorboard(row)

    def write_summary(self, summary: dict[str, Any]) -> None:
        if self.writer:
            write_json(self.path / "summary.json", summary)

    def _write_rows(self, rows: list[dict[str, str]]) -> None:
        with writing(self.metrics), self.metrics.open("w", newline="") as f:
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
    """metrics.csv's rows as written (strings), one per epoch; reports turn them into columns."""
    with Path(path).open(newline="") as f:
        return list(csv.DictReader(f))


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with writing(path):
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(path)


class _LogFile(logging.FileHandler):
    """train.log; a failed write (a full disk) stops the run with one message instead of logging's
    own traceback on stderr after every line."""

    def handleError(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            raise WriteError(f"cannot write {self.baseFilename}: {exc.strerror or exc}") from None
        super().handleError(record)


def _remove(path: Path) -> None:
    shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink(missing_ok=True)


def _cell(value: Any) -> Any:
    """Empty cell for missing values (no validation split), full precision for floats."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(value) if isinstance(value, float) else value
