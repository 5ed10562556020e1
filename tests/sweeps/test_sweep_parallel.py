"""``sweep --parallel``: runs trained as separate processes end exactly as the in-process sweep's,
a run that fails stops none of the others, and Ctrl-C to the sweep stops its runs with a
checkpoint, the same command then resuming them to the uninterrupted result.

Bit for bit equality needs the same thread count on both sides: the session trains on one torch
thread (tests/conftest.py), so the children get ``OMP_NUM_THREADS=1`` (with 2 threads against 1,
a tiny run's weights differ by up to 0.8).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

import resnetlab
from resnetlab import training
from resnetlab.cli import main
from resnetlab.errors import ResnetlabError
from resnetlab.runs import read_metrics, write_config
from resnetlab.sweeps import concurrency, parallel, placement, sweep
from resnetlab.sweeps.sweep import equivalent_command, run_state
from resnetlab.training.config import resolve_config
from tests.builders import tiny_train_overrides
from tests.sweeps.test_sweep import FakeTrain, write_sweep

RUNS = [{"name": "a", "model": "resnet20"}, {"name": "b", "model": "plain20"}, {"name": "c", "model": "resnet20", "seed": 1}]
TIMES = ("epoch_seconds", "images_per_second", "eval_seconds")


def defaults(data_dir: Path) -> dict[str, Any]:
    # 4 epochs of 4 steps: a run is still training for a while after its first checkpoint. fp32: the
    # session makes precision auto fp32 (tests/conftest.py) in this process only, not in the children
    return {"recipe": "paper", **tiny_train_overrides(data_dir), "epochs": 4, "precision": "fp32"}


@pytest.fixture(scope="module")
def sequential(tiny_image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three runs trained one after another in this process: what a parallel sweep must give."""
    root = tmp_path_factory.mktemp("sequential")
    sweep(write_sweep(root / "s.yaml", RUNS, defaults(tiny_image_folder)), root / "out", write_report=False)
    return root / "out"


@pytest.fixture(autouse=True)
def one_thread_per_child(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def assert_same_runs(out: Path, reference: Path, names: str) -> None:
    for name in names:
        rows, expected = (read_metrics(folder / name / "metrics.csv") for folder in (out, reference))
        assert [{k: v for k, v in r.items() if k not in TIMES} for r in rows] == \
               [{k: v for k, v in r.items() if k not in TIMES} for r in expected], name
        weights, expected_weights = (torch.load(folder / name / "weights.pth", weights_only=True) for folder in (out, reference))
        assert weights.keys() == expected_weights.keys()
        assert all(torch.equal(weights[k], expected_weights[k]) for k in weights), f"{name}: weights differ"


@pytest.mark.slow  # real processes or real data: the whole suite runs it, the quick tier does not
def test_a_failing_run_leaves_the_others_training_and_is_named_at_the_end(
        sequential: Path, tiny_image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = [RUNS[0], {**RUNS[1], "data_dir": str(tmp_path / "missing")}, RUNS[2]]
    spec = write_sweep(tmp_path / "s.yaml", runs, defaults(tiny_image_folder))
    args = ["sweep", str(spec), "--out", str(tmp_path / "out"), "--parallel", "2", "--no-checkpoints"]
    assert main(args) == 2
    captured = capsys.readouterr()
    error = captured.err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("resnetlab: error: sweep tiny: 1 of 3 run(s) failed: b (exit 2: resnetlab: error:")
    assert str(tmp_path / "missing") in error[0] and f"log {tmp_path / 'out' / 'logs' / 'b.log'}" in error[0]
    reads, lines = [], []  # one line per data set read, one per run start and end, none from the runs themselves
    for line in captured.out.splitlines():
        (reads if line.startswith("[sweep tiny] ") else lines).append(line)
    assert reads == [f"[sweep tiny] reading folder from {folder} once for the runs" for folder in (tiny_image_folder, tmp_path / "missing")]
    starts_and_ends = [f"[sweep tiny {i}/3] {name}" for i, name in enumerate("abc", 1) for _ in range(2)]
    assert sorted(line.split(":")[0] for line in lines) == starts_and_ends
    assert any(line.startswith("[sweep tiny 2/3] b: FAILED (exit 2: resnetlab: error:") for line in lines)
    a_ends = [line for line in lines if line.startswith("[sweep tiny 1/3] a: finished, test accuracy ")]
    assert len(a_ends) == 1 and f"{float(read_metrics(sequential / 'a' / 'metrics.csv')[-1]['test_acc']):.4f}" in a_ends[0]
    assert_same_runs(tmp_path / "out", sequential, "ac")
    assert not (tmp_path / "out" / "report").exists()  # the report waits for every run
    assert run_state(tmp_path / "out" / "b") == "stale"  # the same command starts b over once its data is found


@pytest.mark.slow  # about a minute here: five training processes and the sweep's own
def test_ctrl_c_stops_every_run_with_a_checkpoint_and_the_same_command_resumes_them(
        sequential: Path, tiny_image_folder: Path, tmp_path: Path) -> None:
    spec = write_sweep(tmp_path / "s.yaml", RUNS, defaults(tiny_image_folder))
    out = tmp_path / "out"
    command = [sys.executable, "-m", "resnetlab", "sweep", str(spec), "--out", str(out), "--parallel", "2", "--no-report"]
    env = {**os.environ, "PYTHONPATH": str(Path(resnetlab.__file__).parents[1])}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (out / "a" / "checkpoints" / "last.pt").is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr
    assert re.search(r"sweep interrupted by SIGINT: [12] run\(s\) stopped \(with a checkpoint once one has started training\), "
                     r"1 not started", stderr)
    assert "again to continue" in stderr and "] a: stopped; log " in stdout
    assert (out / "a" / "checkpoints" / "last.pt").is_file() and not (out / "a" / "summary.json").exists()
    assert not (out / "c").exists() and "] c:" not in stdout  # no run starts after the signal

    assert main(command[3:]) == 0
    assert "resuming" in (out / "a" / "train.log").read_text()
    assert_same_runs(out, sequential, "abc")
    files = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.parts[len(out.parts)] in ("a", "b", "c")}
    assert main([*command[3:-1], "--no-checkpoints"]) == 0  # everything finished: nothing trains again, the report is written
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.parts[len(out.parts)] in ("a", "b", "c")} == files
    page = (out / "report" / "index.html").read_text()
    assert all(f">{name}</a>" in page for name in "abc") and "--parallel 2" in page


def test_parallel_auto_starts_the_runs_that_fit_in_the_free_gpu_memory_and_is_one_without_a_gpu(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    models = ("resnet20", "resnet56", "resnet20", "resnet110", "resnet20")
    configs = [resolve_config("paper", overrides={"model": m, "out": str(tmp_path / str(i))}) for i, m in enumerate(models)]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    share = concurrency.auto_parallel(configs)  # device auto on a machine without a GPU
    assert (share.runs, share.places) == (1, [placement.SHARED])
    assert share.reason == "1 (runs on cpu, not one CUDA device: one run at a time, in this process)"

    r20, r56, r110 = (concurrency.run_memory_estimate(configs[i]) for i in (0, 1, 3))
    assert concurrency.PROCESS_OVERHEAD < r20 < r56 < r110
    budget = 2 * r20 + r56 + r20 // 2  # the first three fit, resnet110 does not beside them; the last resnet20 does not either
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)  # one GPU (several: tests/sweeps/test_sweep_placement.py)
    monkeypatch.setattr(concurrency, "free_gpu_memory", lambda devices: [int(budget / concurrency.USABLE_FRACTION) + 1] * len(devices))
    monkeypatch.setattr(concurrency, "usable_cores", lambda: 16)
    share = concurrency.auto_parallel(configs)
    assert (share.runs, share.places, share.estimates) == (5, [placement.Place(budget=budget)], [r20, r56, r20, r110, r20])
    assert re.search(r"GiB per run for resnet20 to \d+\.\d GiB for resnet110\): 3 start together$", share.reason)
    assert placement.first_wave(share.estimates, share.runs, share.places) == [0, 0, 0, None, None]
    assert placement.first_wave(share.estimates, 2, share.places) == [0, 0, None, None, None]  # no more than the cores
    assert placement.first_wave([r110 * 100, r20], 5, share.places) == [0, None]  # a run too large for the budget still starts, alone
    assert placement.fits(r20, [r20, r56], budget) and not placement.fits(r110, [r20, r56], budget)


def test_parallel_auto_without_a_gpu_trains_one_run_after_another_in_this_process(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeTrain()
    monkeypatch.setattr(training, "train", fake, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    sweep(write_sweep(tmp_path / "s.yaml", RUNS[:2]), tmp_path / "out", write_report=False, parallel="auto")
    assert fake.calls == [("a", False, False), ("b", False, False)]
    assert capsys.readouterr().out.splitlines()[0] == \
        "[sweep tiny] --parallel auto: 1 (runs on cpu, not one CUDA device: one run at a time, in this process)"


def test_bad_parallel_values_are_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_sweep(tmp_path / "s.yaml", RUNS)
    with pytest.raises(SystemExit):
        main(["sweep", str(spec), "--parallel", "0"])
    assert "--parallel: use a positive whole number or auto, not '0'" in capsys.readouterr().err
    with pytest.raises(ResnetlabError, match="--parallel must be a positive whole number or auto, got 'two'"):
        sweep(spec, tmp_path / "out", parallel="two")


def test_the_report_names_the_parallel_command() -> None:
    assert equivalent_command("s.yaml", Path("out"), {"epochs": 3}, 2) == "resnetlab sweep s.yaml --out out --parallel 2 --set epochs=3"
    assert equivalent_command("s.yaml", Path("out"), None) == "resnetlab sweep s.yaml --out out"


def test_a_child_trains_the_config_the_sweep_resolved(tmp_path: Path) -> None:
    """The file a child reads (--config) wins over the recipe and its per-model values: the same config."""
    config = resolve_config("paper", overrides={"model": "resnet110", "out": str(tmp_path / "r"), "epochs": 3})
    write_config(config.to_dict(), tmp_path / "r.yaml")
    assert resolve_config(None, tmp_path / "r.yaml") == config
    assert config.error_warmup_lr == 0.01  # resnet110's own value in the paper recipe, kept


def test_a_child_takes_values_that_look_like_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``sweep ... --out=--psw --parallel 2``: each child once failed "argument --config: expected one argument"."""
    from resnetlab.cli import build_parser

    started: list[list[str]] = []
    monkeypatch.setattr(parallel.subprocess, "Popen", lambda command, **kwargs: started.append(command))
    monkeypatch.chdir(tmp_path)
    config = resolve_config("paper", overrides={"out": "--psw/a", "epochs": 1})
    for state in ("new", "resumable", "stale"):
        parallel.start(parallel.Job(1, "a", config, state, ""), Path("--psw-logs"), dict(os.environ))
    for command in started:
        args = build_parser().parse_args(command[3:])  # after "python -m resnetlab"
        assert args.config_file == "--psw-logs/a.yaml"
        assert (args.resume if command[-1].startswith("--resume") else args.out) == "--psw/a"
