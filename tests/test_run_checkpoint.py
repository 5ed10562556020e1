"""One rule for which checkpoint a run folder stands for, whatever command reads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from resnetlab.checkpoint import checkpoint_path
from resnetlab.errors import ResnetlabError
from resnetlab.reports.reading import Run
from resnetlab.runs import run_checkpoint


def make_run(root: Path, *names: str) -> Path:
    (root / "checkpoints").mkdir(parents=True)
    for name in names:
        (root / "checkpoints" / name).write_bytes(b"x")
    return root


def test_a_run_folder_means_its_final_model_then_its_best(tmp_path: Path) -> None:
    both = make_run(tmp_path / "both", "best.pt", "last.pt")
    only_best = make_run(tmp_path / "best", "best.pt")
    assert run_checkpoint(both) == both / "checkpoints" / "last.pt"
    assert run_checkpoint(only_best) == only_best / "checkpoints" / "best.pt"
    assert checkpoint_path(both) == run_checkpoint(both)
    assert Run(path=both, name="both", config={}, summary={}, metrics={}).checkpoint_file() == both / "checkpoints" / "last.pt"


def test_a_file_is_itself_and_a_folder_without_checkpoints_is_named(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", "best.pt", "last.pt")
    assert checkpoint_path(run / "checkpoints" / "best.pt") == run / "checkpoints" / "best.pt"
    assert run_checkpoint(tmp_path) is None
    with pytest.raises(ResnetlabError, match=r"no checkpoints/last.pt or checkpoints/best.pt"):
        checkpoint_path(tmp_path)
    with pytest.raises(ResnetlabError, match=r"does not exist"):
        checkpoint_path(tmp_path / "missing.pt")
