"""benchmarks/ where there is no GPU: one line saying so, exit status 2, no traceback; the GPU check keeps its budget."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]


def load_benchmark(name: str) -> ModuleType:
    """benchmarks/<name>.py as a module: the scripts are no package, so they are loaded from their file."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def test_time_to_accuracy_reads_both_runs_and_prints_times_to_each_threshold_and_their_ratio(tmp_path, capsys) -> None:
    tta = load_benchmark("time_to_accuracy")
    rows = {"new": [(100, 5, 0.86), (100, 5, 0.881)], "old": [(200, 10, 0.80), (200, 10, 0.87), (200, 10, 0.8801)]}
    curves = {}
    for name, epochs in rows.items():
        run = tmp_path / name
        run.mkdir()
        lines = ["epoch,epoch_seconds,eval_seconds,test_acc"] + [f"{i + 1},{s},{e},{a}" for i, (s, e, a) in enumerate(epochs)]
        (run / "metrics.csv").write_text("\n".join(lines) + "\n")
        curves[name] = tta.read_curve(run)
    assert curves["old"][-1] == (3, 630.0, 0.8801, 600.0)  # wall time counts the test passes, training time does not
    tta.print_tables(curves, seed=0)
    out = capsys.readouterr().out.splitlines()
    assert [line.split() for line in out if line.lstrip().startswith(("training", "to 87%", "to 88%"))] == [
        ["training", "200", "600", "0.33x"], ["to", "87%", "210", "420", "0.50x"], ["to", "88%", "210", "630", "0.33x"]]


def test_the_compile_benchmark_says_when_a_faster_step_has_repaid_its_compilation() -> None:
    bench = load_benchmark("compile_cpu")
    # 1000 -> 1250 images/s saves 0.2 ms an image: 60 s of compilation is repaid after 300,000 images (6 CIFAR epochs)
    assert bench.images_to_break_even(60.0, 1000.0, 1250.0) == pytest.approx(300_000)
    assert bench.images_to_break_even(60.0, 1000.0, 990.0) is None  # a slower compiled step never repays it
    assert bench.SideResult(32, 25.0, 900.0, 1080.0).ratio == pytest.approx(1.2)
