"""The results table in the paper's Table 6 form, as Markdown (for reading) and CSV (for tools).

One row per run, with the figures taken from its summary.json; the CSV keeps plain numbers
(parameters as an integer, errors in percent to 2 decimals, seconds to 0.1) for tools, the
Markdown rounds them the way the paper prints them (0.27M, 8.75).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from resnetlab.files import replacing
from resnetlab.models.paper import PAPER_CIFAR10_ERROR
from resnetlab.reports.reading import Run

COLUMNS = (
    "run", "model", "model_options", "layers", "params", "train_error_pct", "test_error_pct", "paper_error_pct",
    "train_seconds", "epochs", "iterations", "recipe", "dataset", "status",
)
HEADERS = {
    "run": "run", "model": "model", "model_options": "model options", "layers": "layers", "params": "params",
    "train_error_pct": "train error (%)", "test_error_pct": "test error (%)",
    "paper_error_pct": "paper error (%)", "train_seconds": "train time", "epochs": "epochs",
    "iterations": "iterations", "recipe": "recipe", "dataset": "dataset", "status": "status",
}


# Settings that never make two runs' numbers differ, or have a column of their own: the table's
# columns for "what differs between these runs" leave them out.
NOT_COMPARED = ("out", "recipe", "model", "model_options", "epochs", "dataset", "quiet", "device", "workers",
                "memory_budget_gb", "collective_timeout", "compile", "cuda_graphs", "photo_views", "channels_last", "stream")


def differing_settings(runs: Sequence[Run]) -> list[str]:
    """The config fields whose values differ between ``runs`` (image size, data folder, seed...), in
    the config's order: each becomes a column of the table, so that no difference goes unseen."""
    if len(runs) < 2:
        return []
    keys = [k for run in runs for k in run.config if k not in NOT_COMPARED and k != "recipe_changes"]
    ordered = list(dict.fromkeys(keys))
    return [k for k in ordered if len({repr(run.config.get(k)) for run in runs}) > 1]


def table_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """COLUMNS, with the settings that differ between the runs after the recipe."""
    extra = [k for k in (rows[0] if rows else {}) if k not in COLUMNS]
    at = COLUMNS.index("recipe") + 1
    return [*COLUMNS[:at], *extra, *COLUMNS[at:]]


def header(key: str) -> str:
    return HEADERS.get(key, key.replace("_", " "))


def result_rows(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """One dict per run with the COLUMNS keys (None where the run does not say), plus one key per
    setting that differs between the runs (``differing_settings``)."""
    rows = []
    varying = differing_settings(runs)
    for run in runs:
        s = run.summary
        train_acc, test_acc = run.final("train_acc"), run.final("test_acc")
        rows.append({
            "run": run.name,
            "model": run.model,
            "model_options": ", ".join(f"{k}={v}" for k, v in run.model_options.items()) or None,
            "layers": run.depth,
            "params": s.get("params"),
            "train_error_pct": None if train_acc is None else 100 * (1 - train_acc),
            "test_error_pct": None if test_acc is None else 100 * (1 - test_acc),
            "paper_error_pct": PAPER_CIFAR10_ERROR.get(run.model) if run.is_cifar10 else None,
            "train_seconds": s.get("train_seconds"),
            "epochs": s.get("epochs", run.config.get("epochs")),
            "iterations": s.get("iterations"),
            "recipe": run.recipe_with_changes,
            "dataset": s.get("dataset", run.config.get("dataset")),
            "status": "finished" if run.finished else "unfinished",
            **{k: run.config.get(k) for k in varying},
        })
    return rows


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    with replacing(path) as tmp, tmp.open("w", newline="") as f:
        columns = table_columns(rows)
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row[k] is None else csv_value(k, row[k]) for k in columns})
    return path


def csv_value(key: str, value: Any) -> Any:
    """A number as it means: percentages to 2 decimals (34.21, not 34.209999999999994), seconds to 0.1."""
    if key.endswith("_pct") and isinstance(value, float):
        return round(value, 2)
    if key == "train_seconds" and isinstance(value, float):
        return round(value, 1)
    return value


def format_cell(key: str, value: Any) -> str:
    """How a value is printed in Markdown and HTML: parameters in millions, errors to 2 decimals."""
    if value is None:
        return "-"
    if key == "params":
        return f"{value / 1e6:.2f}M" if value >= 1e5 else f"{value / 1e3:.1f}K"
    if key.endswith("_pct"):
        return f"{value:.2f}"
    if key == "train_seconds":
        return format_duration(float(value))
    if isinstance(value, (dict, list, bool)):
        from resnetlab.training.config import shown_value

        return shown_value(value)
    return str(value)


def format_duration(seconds: float) -> str:
    """12.3 -> '12s', 754 -> '12m 34s', 7300 -> '2h 01m'."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """A GitHub-flavoured Markdown table (numbers right-aligned)."""
    numeric = {"layers", "params", "train_error_pct", "test_error_pct", "paper_error_pct", "train_seconds", "epochs", "iterations"}
    columns = table_columns(rows)
    lines = ["| " + " | ".join(header(k) for k in columns) + " |",
             "|" + "|".join("---:" if k in numeric else "---" for k in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(format_cell(k, row[k]) for k in columns) + " |")
    return "\n".join(lines) + "\n"


def write_markdown(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    note = ("\nErrors are top-1 on the test split after the last epoch; paper error is the CIFAR-10 figure "
            "of He et al. (2016), Table 6, for comparison only when the data set is the same.\n")
    text = markdown_table(rows) + note
    with replacing(path) as tmp:
        tmp.write_text(text)
    return path
