"""A report compares like with like: one line only through runs that differ in depth alone, a
column for every setting that differs, the recipe with its changes."""

from __future__ import annotations

from pathlib import Path

import yaml

from resnetlab.reports import plots
from resnetlab.reports.reading import read_runs
from resnetlab.reports.tables import markdown_table, result_rows, table_columns
from tests.builders import fake_run


def _set(run: Path, **values) -> Path:
    config = yaml.safe_load((run / "config.yaml").read_text())
    (run / "config.yaml").write_text(yaml.safe_dump({**config, **values}))
    return run


def _runs(tmp_path: Path):
    return read_runs([
        fake_run(tmp_path / "r20", "resnet20", final_test_acc=0.91),
        fake_run(tmp_path / "r56", "resnet56", final_test_acc=0.93),
        _set(fake_run(tmp_path / "r18-96px", "resnet18", dataset="folder", final_test_acc=0.7), image_size=96,
             data_dir="/data/flowers"),
        _set(fake_run(tmp_path / "r32-lr", "resnet32", final_test_acc=0.9), lr=0.05, recipe_changes={"epochs": 6, "lr": 0.05}),
    ])


def test_a_line_joins_only_runs_that_differ_in_depth_alone(tmp_path: Path) -> None:
    fig, ax = plots._axes()
    runs = _runs(tmp_path)
    plots._scatter_by_family(ax, [(r, float(r.depth), 100 * r.final("test_acc")) for r in runs])
    drawn = {line.get_label(): list(line.get_xdata()) for line in ax.lines}
    assert drawn == {"ResNets (residual)": [20.0, 56.0], "r18-96px": [18.0], "r32-lr": [32.0]}


def test_the_table_shows_the_recipe_with_its_changes_and_every_setting_that_differs(tmp_path: Path) -> None:
    rows = result_rows(_runs(tmp_path))
    assert table_columns(rows)[table_columns(rows).index("recipe"):][:4] == ["recipe", "data_dir", "lr", "image_size"]
    assert [r["recipe"] for r in rows] == ["paper (epochs 6)", "paper (epochs 6)", "paper (epochs 6, image_size 96)",
                                           "paper (epochs 6, lr 0.05)"]
    assert [(r["image_size"], r["lr"]) for r in rows] == [(None, 0.1), (None, 0.1), (96, 0.1), (None, 0.05)]
    assert "| recipe | data dir | lr | image size |" in markdown_table(rows)
