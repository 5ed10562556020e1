"""Runs as a report sees them: read through ``runs.RunFolder``, which alone knows the file names.

A report is built from what ``resnetlab.training.train`` leaves on disk (config.yaml,
metrics.csv, summary.json), never from live objects, so a report can be rebuilt at any time
from folders copied off another machine. An unfinished run (no summary.json yet) still reads:
its curves are shown and the table says it is unfinished.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resnetlab.errors import ResnetlabError
from resnetlab.models.registry import model_info
from resnetlab.runs import METRICS_COLUMNS, RunFolder


@dataclass
class Run:
    """One run folder as the report sees it: names, configuration, summary and per-epoch metrics."""

    path: Path
    name: str  # folder name; unique label in tables and legends
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, list[float]] = field(default_factory=dict)  # column -> one value per epoch (nan if empty)

    @property
    def finished(self) -> bool:
        return bool(self.summary)

    @property
    def model(self) -> str:
        return str(self.summary.get("model") or self.config.get("model") or "?")

    @property
    def model_options(self) -> dict[str, Any]:
        """Options the model was built with (e.g. zero_init_residual): a row must say when a run
        is not the paper's model as defined."""
        return dict(self.config.get("model_options") or {})

    @property
    def depth(self) -> int | None:
        """Weighted layers as the paper counts them (from the model registry), None if unknown."""
        try:
            return model_info(self.model).depth
        except ResnetlabError:
            return None

    @property
    def command(self) -> str | None:
        return self.summary.get("command") or self.config.get("command")

    @property
    def recipe(self) -> str | None:
        return self.summary.get("recipe") or self.config.get("recipe")

    @property
    def recipe_changes(self) -> dict[str, Any] | None:
        """What the run changed from its recipe: as recorded, else (a run recorded before runs listed
        them) worked out from its config.yaml, where values decided at the start count as changes;
        None when neither says."""
        for record in (self.summary, self.config):
            if isinstance(record.get("recipe_changes"), dict):
                return dict(record["recipe_changes"])
        from resnetlab.training.config import config_from_dict, recipe_changes

        try:
            return recipe_changes(config_from_dict(dict(self.config), "run config")) if self.config else None
        except (ResnetlabError, TypeError):
            return None

    @property
    def recipe_with_changes(self) -> str | None:
        """"paper", "paper (lr 0.05, momentum 0.0)", or "paper (changes unknown)"."""
        from resnetlab.training.config import shown_value

        if self.recipe is None:
            return None
        changes = self.recipe_changes
        if changes is None:
            return f"{self.recipe} (changes unknown)"
        return f"{self.recipe} ({', '.join(f'{k} {shown_value(v)}' for k, v in changes.items())})" if changes else self.recipe

    def comparable(self) -> tuple[str, ...]:
        """What runs joined by one line in a depth plot share: everything but the depth (the model's
        family and kind, the data, the recipe and its changes, the image size)."""
        from resnetlab.training.config import shown_value

        try:
            family = model_info(self.model).family
        except ResnetlabError:
            family = "?"
        kind = self.model.rstrip("0123456789_") or self.model  # resnet56 -> resnet, plain20 -> plain
        dataset = str(self.summary.get("dataset") or self.config.get("dataset") or "?")
        changes = self.recipe_changes
        return (family, kind, dataset, str(self.config.get("data_dir") or ""), str(self.recipe),
                "unknown" if changes is None else shown_value(dict(sorted(changes.items()))),
                str(self.config.get("image_size")), shown_value(self.model_options))

    @property
    def is_cifar10(self) -> bool:
        """Trained on CIFAR-10 (official or a copy of it): only then are the paper's figures comparable."""
        dataset = self.summary.get("dataset") or self.config.get("dataset") or ""
        text = f"{dataset} {self.config.get('data_dir') or ''}".lower().replace("-", "")
        return "cifar10" in text and "cifar100" not in text

    def final(self, key: str) -> float | None:
        """``summary.final[key]``, else the last non-empty value of that metrics column."""
        value = self.summary.get("final", {}).get(key)
        if value is not None:
            return float(value)
        values = [v for v in self.metrics.get(key, []) if not math.isnan(v)]
        return values[-1] if values else None

    def planned_lr(self) -> tuple[list[int], list[float], list[int]] | None:
        """(iterations, lr at each, multistep drop iterations) from the run's own schedule code.

        Per-epoch lr values in metrics.csv only bracket a drop within an epoch; recomputing the
        schedule from config.yaml with ``training.schedules`` places it at its exact iteration.
        None when the config is missing or not readable by this version.
        """
        from resnetlab.training.config import config_from_dict
        from resnetlab.training.schedules import lr_multiplier, to_iterations

        first = [v for v in self.metrics.get("iteration", []) if not math.isnan(v)]
        if not self.config or not first:
            return None
        try:
            config = config_from_dict(dict(self.config), f"{RunFolder(self.path).config_file}")
        except (ResnetlabError, TypeError):
            return None
        per_epoch = int(first[0])
        total = int(self.summary.get("iterations") or min(x for x in (
            config.epochs * per_epoch if config.epochs else None, config.max_iters) if x))
        multiplier = lr_multiplier(config, total, per_epoch)
        iterations = list(range(total))
        drops = []
        if config.schedule == "multistep":
            drops = sorted({to_iterations(m, total, per_epoch, config.schedule_unit) for m in config.milestones})
            drops = [d for d in drops if 0 < d < total]
        return iterations, [config.lr * multiplier(i) for i in iterations], drops

    def checkpoint_file(self) -> Path | None:
        """The checkpoint whose test accuracy is ``final.test_acc`` (``run_checkpoint``'s rule)."""
        return RunFolder(self.path).checkpoint_file()


def read_run(path: str | Path) -> Run:
    """Read one run folder; a folder with neither summary.json nor metrics.csv is refused."""
    folder = RunFolder(path)
    if not folder.path.is_dir():
        raise ResnetlabError(f"run folder {path} does not exist: pass folders written by 'resnetlab train'")
    if not folder.summary_file.is_file() and not folder.metrics.is_file():
        raise ResnetlabError(f"{path} is not a run folder (no {folder.summary_file.name} or {folder.metrics.name}): "
                             "pass folders written by 'resnetlab train'")
    return Run(path=folder.path, name=folder.path.resolve().name, config=folder.read_config(),
               summary=folder.read_summary(), metrics=metric_columns(folder.read_metrics()))


def read_runs(paths: list[str | Path]) -> list[Run]:
    """Read several run folders; folder names that repeat get their parent's name prepended."""
    runs = [read_run(p) for p in paths]
    if not runs:
        raise ResnetlabError("no run folders given: pass at least one folder written by 'resnetlab train'")
    names = [r.name for r in runs]
    for run in runs:
        if names.count(run.name) > 1:
            run.name = f"{run.path.resolve().parent.name}/{run.name}"
    return runs


def metric_columns(rows: list[dict[str, str]]) -> dict[str, list[float]]:
    """metrics.csv's rows as columns of floats, for plots and tables (an empty cell, e.g. val_*
    without a split, becomes nan)."""
    return {key: [_to_float(row.get(key)) for row in rows] for key in (rows[0].keys() if rows else METRICS_COLUMNS)}


def _to_float(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan
