"""runs.py: the run folder's files, its lock and its one log."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from resnetlab.runs import PACKAGE_LOG, RunFolder


def test_every_module_logs_into_train_log_while_the_run_is_open(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (PACKAGE_LOG.level, PACKAGE_LOG.propagate, list(PACKAGE_LOG.handlers))
    run = RunFolder(tmp_path / "run")
    run.prepare(resume=False, overwrite=False)
    run.open_log(quiet=True)
    run.log.info("the run's own line")
    logging.getLogger("resnetlab.data.folder").warning("skipped 1 unreadable image(s) in %s: %s", "train", "cats/broken.png")
    logging.getLogger("resnetlab.data.folder").info("a data detail")
    run.close()
    logging.getLogger("resnetlab.data.folder").warning("after the run")
    lines = [line.split(" ", 2)[2] for line in (tmp_path / "run" / "train.log").read_text().splitlines()]
    assert lines == ["the run's own line", "skipped 1 unreadable image(s) in train: cats/broken.png", "a data detail"]
    assert capsys.readouterr().out == "skipped 1 unreadable image(s) in train: cats/broken.png\n"  # quiet: warnings, once
    assert (PACKAGE_LOG.level, PACKAGE_LOG.propagate, PACKAGE_LOG.handlers) == before


def test_a_process_that_does_not_write_adds_no_handler(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run", writer=False)
    run.open_log(quiet=False)
    assert PACKAGE_LOG.handlers == [] and not (tmp_path / "run" / "train.log").exists()
    run.close()
