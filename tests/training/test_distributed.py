"""Two CPU processes with gloo (torchrun): finishes, records world_size 2, tracks one process.

See ddp_worker.py for why the backbone is frozen in this comparison.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from resnetlab.runs import read_metrics

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("ddp_worker.py")


def run_worker(out: Path, processes: int) -> None:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    command = (launcher if processes > 1 else [sys.executable]) + [str(WORKER), str(out)]
    # this checkout's sources first, not the resnetlab the interpreter has installed (another checkout's, maybe)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_two_process_gloo_run_matches_one_process(tmp_path):
    run_worker(tmp_path / "ddp", 2)
    run_worker(tmp_path / "single", 1)
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["iterations"] == 3 * 6
    ddp = [float(r["train_loss"]) for r in read_metrics(tmp_path / "ddp" / "metrics.csv")]
    single = [float(r["train_loss"]) for r in read_metrics(tmp_path / "single" / "metrics.csv")]
    assert len(ddp) == len(single) == 3
    # Same global batch, data order and averaged gradients: equal up to summation order.
    assert ddp == pytest.approx(single, rel=1e-3), (ddp, single)
    assert ddp[-1] < ddp[0]
    test_acc = [float(r["test_acc"]) for r in read_metrics(tmp_path / "ddp" / "metrics.csv")]
    assert test_acc == pytest.approx([float(r["test_acc"]) for r in read_metrics(tmp_path / "single" / "metrics.csv")], abs=0.05)
