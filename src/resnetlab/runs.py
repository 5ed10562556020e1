"""The run folder: the one place that names its files, reads them and writes them.

    config.yaml        resolved TrainConfig (a valid --config file)
    metrics.csv        one row per epoch (METRICS_COLUMNS; accuracies are fractions)
    summary.json       the dict ``train`` returns
    class_indices.json {"0": "airplane", ...}
    data.json          image folders: what the data held at the start (a resume refuses other data)
    weights.pth        the final model's plain state_dict() (torch.load(..., weights_only=True))
    preprocess.json    beside weights.pth: mean, std, input size, resize, EXIF rule, test views (predict --weights)
    train.log          everything the package logs during the run (data/ included): the console lines, plus warnings
    tb/                TensorBoard events (when tensorboard is installed: training.run_log)
    checkpoints/last.pt   the latest state: what a resume continues and what the run folder means
    checkpoints/best.pt   the epoch of best validation accuracy (only with a validation split)
    run.lock           while a process writes here (see run_lock.py)

Training writes through ``RunFolder``; eval, predict, export, reports and sweeps read through it
(or through ``run_checkpoint``), so a new file or a renamed one changes this module alone.

Only the main process writes (``RunFolder(..., writer=False)`` makes every writer a no-op); it
holds the folder's lock (``run_lock.py``), which ``train`` takes between ``make`` and ``prepare``.
``--overwrite`` moves the old run's files into ``.replaced/`` and deletes them only once the new
run has started (its data read, its model built, its config written); a run that fails before
that, or dies, gets the old files back.
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

import yaml

from resnetlab.config_values import load_yaml, read_text
from resnetlab.errors import ResnetlabError, option
from resnetlab.files import WriteError, atomic_save, link_problem, open_append, replacing, writing
from resnetlab.run_lock import LOCK_NAME

CONFIG = "config.yaml"
METRICS = "metrics.csv"
SUMMARY = "summary.json"
CLASS_INDICES = "class_indices.json"
DATA = "data.json"
WEIGHTS = "weights.pth"
PREPROCESS = "preprocess.json"  # beside weights.pth: how a file becomes the model's input (predict --weights)
LOG = "train.log"
TENSORBOARD = "tb"
CHECKPOINTS = "checkpoints"
LAST = "last.pt"
BEST = "best.pt"
REPLACED = ".replaced"  # the old run's files while --overwrite replaces them

METRICS_COLUMNS = ("epoch", "iteration", "lr", "train_loss", "train_acc", "val_loss", "val_acc",
                   "test_loss", "test_acc", "epoch_seconds", "images_per_second", "eval_seconds", "test_views")
RECORDS = (CONFIG, METRICS, SUMMARY)  # files only a run of ours writes: one of them makes a folder a run
OWN_FILES = (*RECORDS, CHECKPOINTS, WEIGHTS, LOG, TENSORBOARD, CLASS_INDICES, DATA, PREPROCESS)  # everything a run writes
EVAL_FILES = "eval-*-confusion.csv", "eval-*-confusion.png", "eval-*-mistakes.png"  # what eval writes into a run folder
PACKAGE_LOG = logging.getLogger("resnetlab")  # every module's logger is below it: a run's lines go out here
RUN_CHECKPOINTS = (LAST, BEST)  # a run folder means its final model; best.pt only where no last.pt was kept


def run_checkpoint(folder: str | Path) -> Path | None:
    """The checkpoint a run folder stands for: ``checkpoints/last.pt``, the final model (the one that
    summary.json's ``final`` figures and weights.pth describe), else ``checkpoints/best.pt``.

    The one rule for every command that takes a run folder (eval, predict, export, report,
    finetune --init-from, init_from), so that they all speak of the same weights."""
    for name in RUN_CHECKPOINTS:
        path = Path(folder) / CHECKPOINTS / name
        if path.is_file():
            return path
    return None


def holds_run(folder: str | Path) -> bool:
    """Whether a run of ours got far enough to leave something worth keeping in ``folder``.

    A run writes config.yaml and class_indices.json before its first checkpoint, so a folder without
    metrics.csv, summary.json or that pair is not a run, whatever else it holds: a user's own
    ``checkpoints/``, ``weights.pth`` or hand-written config.yaml are never taken for a run's (and
    never replaced)."""
    folder = Path(folder)
    if (folder / METRICS).is_file() or (folder / SUMMARY).is_file():
        return True
    return (folder / CONFIG).is_file() and (folder / CLASS_INDICES).is_file()


def run_files(folder: Path) -> list[str]:
    """The names in ``folder`` a run (and eval into it) wrote: what ``--overwrite`` replaces, and only that."""
    evals = {p.name for pattern in EVAL_FILES for p in folder.glob(pattern)}
    return [name for name in (*OWN_FILES, *sorted(evals)) if (folder / name).exists() or (folder / name).is_symlink()]


def run_holding(path: str | Path) -> Path | None:
    """The run folder that keeps the file ``path`` (one of its checkpoints, its config.yaml...),
    None when no run does: exports and plots never write over a run's own files."""
    path = Path(path)
    if path.parent.name == CHECKPOINTS and holds_run(path.parent.parent):
        return path.parent.parent
    return path.parent if path.name in OWN_FILES and holds_run(path.parent) else None


def read_metrics(path: str | Path) -> list[dict[str, str]]:
    """metrics.csv's rows as written (strings), one per epoch; reports turn them into columns."""
    with Path(path).open(newline="") as f:
        return list(csv.DictReader(f))


def read_json(path: Path, advice: str) -> dict[str, Any]:
    """A JSON file of the run folder ({} when missing); a damaged one is one message ending in ``advice``."""
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ResnetlabError(f"{path} is not valid JSON ({exc}): {advice}") from None


def write_config(values: dict[str, Any], path: Path) -> None:
    """A resolved config (``TrainConfig.to_dict()``) as the YAML ``--config`` reads, written atomically:
    the one writer of config.yaml, for a run folder and for the configs a sweep hands its runs."""
    text = yaml.safe_dump(values, sort_keys=False)
    with replacing(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path, data: Any) -> None:
    """``data`` as indented JSON, written atomically."""
    text = json.dumps(data, indent=2) + "\n"
    with replacing(path) as tmp:
        tmp.write_text(text)


class RunFolder:
    """One run folder: its paths, what reads them and, in the main process, what writes them."""

    def __init__(self, path: str | Path, *, writer: bool = True) -> None:
        self.path = Path(path)
        self.writer = writer
        self.config_file = self.path / CONFIG
        self.metrics = self.path / METRICS
        self.summary_file = self.path / SUMMARY
        self.class_indices = self.path / CLASS_INDICES
        self.data_record = self.path / DATA
        self.weights = self.path / WEIGHTS
        self.log_file = self.path / LOG
        self.checkpoints = self.path / CHECKPOINTS
        self.last = self.checkpoints / LAST
        self.best = self.checkpoints / BEST
        self.tensorboard = self.path / TENSORBOARD
        self.log = logging.getLogger(f"resnetlab.train.{id(self)}")  # reaches PACKAGE_LOG's handlers
        self._log_handlers: list[logging.Handler] = []
        self._package_log_was = (logging.NOTSET, True)
        self._replaced: Path | None = None  # the old run's files until the new run has started

    # Reading -----------------------------------------------------------------------------------

    def holds_run(self) -> bool:
        return holds_run(self.path)

    def checkpoint_file(self) -> Path | None:
        """``run_checkpoint``'s rule: last.pt, else best.pt."""
        return run_checkpoint(self.path)

    def read_config(self) -> dict[str, Any]:
        """config.yaml as plain values ({} when missing); a damaged file is one message."""
        if not self.config_file.is_file():
            return {}
        data = load_yaml(read_text(self.config_file, "run config"), f"run config {self.config_file}")
        return data if isinstance(data, dict) else {}

    def read_summary(self) -> dict[str, Any]:
        """summary.json ({} while the run is unfinished)."""
        return read_json(self.summary_file, "was the run interrupted while writing it?")

    def read_data_record(self) -> dict[str, Any]:
        """data.json ({} for runs on other data, or from before the record existed)."""
        return read_json(self.data_record, "delete it to resume without the data check")

    def read_metrics(self) -> list[dict[str, str]]:
        """metrics.csv's rows as written ([] before the first epoch ends)."""
        return read_metrics(self.metrics) if self.metrics.is_file() else []

    # Writing: the folder and its lock ------------------------------------------------------------

    def make(self, *, resume: bool) -> None:
        """A fresh run's folder, created (refusing a file of that name); a resume's is there already.
        The main process's alone: then its lock can be taken, before ``prepare`` judges the folder.
        A link where the run writes (its lock included) is refused first."""
        if not self.writer:
            return
        self._refuse_links()
        if resume:
            return
        if self.path.exists() and not self.path.is_dir():
            raise WriteError(f"cannot write {self.path}: it is a file, not a folder (pass a folder to {option('out')})")
        with writing(self.path):
            self.path.mkdir(parents=True, exist_ok=True)

    def prepare(self, *, resume: bool, overwrite: bool) -> None:
        """Refuse to mix two runs in one folder or to write among the user's own files; move the
        old run aside with ``overwrite``; give back one an earlier ``overwrite`` set aside and never replaced.

        Only the main process judges a fresh folder: the others would see its first files."""
        if self.writer:
            self._refuse_links()
        if resume:
            if self.writer and self.path.is_dir():
                self._restore_replaced()
            if not self.last.is_file():
                raise ResnetlabError(f"cannot resume: {self.last} does not exist (start the run without {option('resume')})")
            return
        if not self.writer:
            return
        self.make(resume=False)
        self._restore_replaced()
        if self.holds_run():
            if not overwrite:
                raise ResnetlabError(f"{self.path} already holds a run: continue it with 'resnetlab train --resume "
                                     f"{self.path}' or pass {option('overwrite', True)} to replace it")
            self._move_aside()
        else:
            self._refuse_other_files()
        with writing(self.checkpoints):
            self.checkpoints.mkdir(exist_ok=True)

    def readable(self, path: str | None) -> str | None:
        """Where a file the new run still reads (``init_from``) is while its old run is set aside."""
        if path is None or self._replaced is None:
            return path
        try:
            inside = Path(path).resolve().relative_to(self.path.resolve())
        except ValueError:
            return path
        if not inside.parts:
            return str(self._replaced)  # the run folder itself: its checkpoints, set aside
        return str(self._replaced / inside) if inside.parts[0] in OWN_FILES else path

    def _refuse_links(self) -> None:
        """A link planted where the run writes (train.log, run.lock, tb/, checkpoints/...) would be
        written through to what it points at: refused, naming it, before anything is written."""
        for name in (*OWN_FILES, LOCK_NAME):
            if (problem := link_problem(self.path / name)) is not None:
                raise WriteError(problem)

    def _move_aside(self) -> None:
        """``--overwrite``: the old run's files go to ``.replaced/`` until the new run has started."""
        replaced = self.path / REPLACED
        with writing(replaced):
            replaced.mkdir()
            for name in run_files(self.path):
                (self.path / name).rename(replaced / name)
        self._replaced = replaced

    def _restore_replaced(self) -> None:
        """Put back a run that an ``--overwrite`` set aside and never replaced (it failed or died)."""
        replaced = self.path / REPLACED
        if not replaced.is_dir():
            return
        with writing(self.path):
            for name in run_files(replaced):
                _remove(self.path / name)
                (replaced / name).rename(self.path / name)
            shutil.rmtree(replaced)
        self._replaced = None

    def _refuse_other_files(self) -> None:
        """A folder that is not a run may only hold what a run that failed to start leaves behind
        (its lock, train.log, tb/, an empty checkpoints/) and hidden files (.gitkeep say): a
        user's own checkpoints or weights.pth are never written over."""
        leftovers = {LOG, TENSORBOARD, LOCK_NAME}
        others = sorted(p.name for p in self.path.iterdir()
                        if not p.name.startswith(".") and p.name not in leftovers
                        and not (p.name == CHECKPOINTS and p.is_dir() and not any(p.iterdir())))
        if others:
            shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
            why = f"no {CONFIG}" if not self.config_file.is_file() else f"its {CONFIG} is no run's: no {CLASS_INDICES} beside it"
            raise ResnetlabError(f"{self.path} is not a run folder ({why}) and holds other files ({shown}), "
                                 f"which training would mix with or write over: pass a new or empty folder to {option('out')}")

    def open_log(self, quiet: bool) -> logging.Logger:
        """The run's logger. In the main process everything the package logs while the run is open
        (the run's lines and every module's, data/ included: a skipped image) takes one path, to
        train.log and, unless quiet (then warnings only), stdout."""
        self.log.setLevel(logging.INFO)
        if self.writer:
            with writing(self.log_file):
                file_handler = _LogFile(self.log_file)
            file_handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
            console = logging.StreamHandler(sys.stdout)
            console.setLevel(logging.WARNING if quiet else logging.INFO)
            self._log_handlers = [file_handler, console]
            self._package_log_was = (PACKAGE_LOG.level, PACKAGE_LOG.propagate)
            PACKAGE_LOG.setLevel(logging.INFO)
            PACKAGE_LOG.propagate = False  # not a second time through the root logger's handlers
            for handler in self._log_handlers:
                PACKAGE_LOG.addHandler(handler)
        return self.log

    def close(self) -> None:
        """Close the log; give back an old run the new one never replaced."""
        for handler in self._log_handlers:
            PACKAGE_LOG.removeHandler(handler)
            try:
                handler.close()
            except (OSError, WriteError):  # a full disk: the run already stops on that error
                pass
        if self._log_handlers:
            PACKAGE_LOG.setLevel(self._package_log_was[0])
            PACKAGE_LOG.propagate = self._package_log_was[1]
            self._log_handlers = []
        if self._replaced is not None:
            self._restore_replaced()

    # Writing: the run's files ----------------------------------------------------------------------

    def write_start(self, config: dict[str, Any], classes: list[str]) -> None:
        """The run has started: its config and classes are written, the run it replaces is deleted."""
        if not self.writer:
            return
        write_config(config, self.config_file)
        write_json(self.class_indices, {str(i): name for i, name in enumerate(classes)})
        if self._replaced is not None:  # renamed first: a half-deleted old run is never restored
            shutil.rmtree(self.path / f"{REPLACED}.deleting", ignore_errors=True)
            doomed = self._replaced.rename(self.path / f"{REPLACED}.deleting")
            self._replaced = None
            shutil.rmtree(doomed, ignore_errors=True)

    def write_data_record(self, record: dict[str, Any]) -> None:
        """data.json: the data a fresh run starts on (``data.fingerprint``), for resumes to compare."""
        if self.writer:
            write_json(self.data_record, record)

    def write_checkpoint(self, checkpoint: dict[str, Any], *, best: bool = False) -> None:
        """checkpoints/last.pt (or best.pt), written atomically: the previous one survives a failed write."""
        if self.writer:
            atomic_save(checkpoint, self.best if best else self.last)

    def write_weights(self, state_dict: dict[str, Any], preprocess: dict[str, Any]) -> None:
        """weights.pth: the final model as a plain state_dict(), for tools that know nothing of checkpoints,
        and preprocess.json beside it (``checkpoint.weights_sidecar``), written first: how to feed it."""
        if self.writer:
            write_json(self.path / PREPROCESS, preprocess)
            atomic_save(state_dict, self.weights)

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
        with writing(self.metrics), open_append(self.metrics, newline="") as f:
            w = csv.DictWriter(f, fieldnames=METRICS_COLUMNS)
            if new:
                w.writeheader()
            w.writerow({k: _cell(_rounded(k, row.get(k))) for k in METRICS_COLUMNS})

    def write_summary(self, summary: dict[str, Any]) -> None:
        if self.writer:
            write_json(self.summary_file, summary)

    def _write_rows(self, rows: list[dict[str, str]]) -> None:
        with replacing(self.metrics) as tmp, tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=METRICS_COLUMNS)
            w.writeheader()
            w.writerows(rows)


class _LogFile(logging.FileHandler):
    """train.log; a failed write (a full disk) stops the run with one message instead of logging's
    own traceback on stderr after every line. Opened without following a link (``open_append``)."""

    def _open(self) -> Any:
        return open_append(self.baseFilename)

    def handleError(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            raise WriteError(f"cannot write {self.baseFilename}: {exc.strerror or exc}") from None
        super().handleError(record)


def _remove(path: Path) -> None:
    shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink(missing_ok=True)


def _rounded(column: str, value: Any) -> Any:
    """A learning rate to 6 significant digits: 0.01, not the schedule's 0.010000000000000002."""
    return float(f"{value:.6g}") if column == "lr" and isinstance(value, float) and math.isfinite(value) else value


def _cell(value: Any) -> Any:
    """Empty cell for missing values (no validation split), full precision for floats."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(value) if isinstance(value, float) else value
