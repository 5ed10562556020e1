"""benchmarks/ where there is no GPU: one line saying so, exit status 2, no traceback; the GPU check keeps its budget."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # a real process: the whole suite runs it, the quick tier does not
def test_the_gpu_benchmark_without_a_gpu_says_so_in_one_line_and_exits_2() -> None:
    # CUDA_VISIBLE_DEVICES="" hides any GPU, so this holds on GPU machines too.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]), "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu.py"), "--steps", "1"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == "benchmarks/gpu.py needs a CUDA GPU: torch.cuda.is_available() is False here\n"


@pytest.mark.slow  # real processes: the whole suite runs it, the quick tier does not
def test_the_gpu_check_keeps_to_its_time_budget_and_refuses_an_unknown_section(tmp_path) -> None:
    script = str(REPO / "benchmarks" / "gpu_check.sh")
    env = {**os.environ, "GPU_CHECK_SECONDS": "10", "PYTHON": sys.executable}
    proc = subprocess.run(["bash", script, str(tmp_path), str(tmp_path / "out"), "gpu-tests", "suite"], env=env,
                          capture_output=True, text=True, timeout=60)
    summary = (tmp_path / "out" / "summary.txt").read_text().splitlines()
    assert proc.returncode == 0 and len(summary) == 2
    assert all(line.endswith("s of the 10 s left") and ": skipped, " in line for line in summary)  # nothing started
    proc = subprocess.run(["bash", script, str(tmp_path), str(tmp_path / "out"), "benchmark"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == "gpu_check: unknown section benchmark (env gpu-tests bench photos suite paper table6)\n"
