"""Every file a run or a report writes gets the mode a plain open() would give: the umask decides,
not mkstemp's 0600 (on a shared server everyone else could read nothing)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from resnetlab.files import current_umask, plain_file_mode
from resnetlab.reports import report
from resnetlab.training import train
from tests.builders import make_tiny_bundle, tiny_config


@pytest.fixture(params=[0o022, 0o077])
def umask(request: pytest.FixtureRequest):
    before = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(before)


def modes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): stat.S_IMODE(p.stat().st_mode) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_run_and_report_files_follow_the_umask(tmp_path: Path, umask: int) -> None:
    assert current_umask() == umask and plain_file_mode() == 0o666 & ~umask
    run = tmp_path / "run"
    train(tiny_config(run, epochs=1), bundle=make_tiny_bundle())
    report([run], tmp_path / "report")
    written = {**modes(run), **{f"report/{k}": v for k, v in modes(tmp_path / "report").items()}}
    assert {"config.yaml", "summary.json", "weights.pth", "checkpoints/last.pt", "metrics.csv", "class_indices.json",
            "report/index.html", "report/results.csv"} <= set(written)
    assert written == dict.fromkeys(written, 0o666 & ~umask)  # 0644 under 022, 0600 under 077
