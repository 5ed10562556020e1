"""Ctrl-C or SIGTERM during ``resnetlab eval``: the pass stops at the next batch, one line, exit 130, nothing written."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

import resnetlab.evaluation.logits as logits_module
from resnetlab.cli import main
from tests.builders import make_checkpoint, make_image_folder


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_evaluation_at_the_next_batch(tmp_path: Path, monkeypatch, capsys, sig) -> None:
    checkpoint = make_checkpoint(tmp_path / "run" / "tiny.pt")
    data = make_image_folder(tmp_path / "data", size=16, per_class={"train": 1, "test": 8})  # 24 test images: 6 batches of 4
    real, calls = logits_module.view_averaged_logits, {"n": 0}

    def counted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            os.kill(os.getpid(), sig)
        return real(*args, **kwargs)

    monkeypatch.setattr(logits_module, "view_averaged_logits", counted)
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}  # SIG_IGN in a background job
    argv = ["eval", str(checkpoint), "--dataset", "folder", "--data-dir", str(data), "--device", "cpu", "--batch-size", "4"]
    assert main(argv) == 130
    assert calls["n"] == 2  # batches 3 to 6 never ran
    assert capsys.readouterr().err == f"resnetlab: evaluation interrupted by {signal.Signals(sig).name}: nothing written\n"
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["tiny.pt"]
    assert {s: signal.getsignal(s) for s in before} == before  # the handlers are given back
