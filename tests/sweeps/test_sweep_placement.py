"""``sweep --parallel`` on several GPUs: which run goes to which GPU, and that its child gets it.

No GPU is needed: ``torch.cuda`` is faked inside each test (monkeypatch, undone after it), so these
decide the same on a machine with real GPUs.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from resnetlab.sweeps import concurrency, parallel, placement, sweep
from resnetlab.sweeps.placement import Place, choose_place, first_wave, physical_ids, visible_gpus
from resnetlab.training.config import resolve_config
from tests.builders import fake_run
from tests.sweeps.test_sweep import write_sweep

GiB = 2**30


def fake_gpus(monkeypatch: pytest.MonkeyPatch, free: list[int], visible: str | None = None) -> list[Any]:
    """``len(free)`` GPUs with ``free`` bytes each; returns the devices whose free memory was asked."""
    asked: list[Any] = []

    def free_gpu_memory(devices: list[torch.device]) -> list[int]:
        asked.extend(devices)
        return [free[device.index or 0] for device in devices]

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(free))
    monkeypatch.setattr(concurrency, "free_gpu_memory", free_gpu_memory)
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    return asked


def test_a_child_names_its_gpu_as_the_sweep_sees_it() -> None:
    assert physical_ids(None, 2) == ["0", "1"]
    assert physical_ids("3,5", 2) == ["3", "5"]  # cuda:1 under CUDA_VISIBLE_DEVICES=3,5 is GPU 5
    assert physical_ids("GPU-a1, GPU-b2", 2) == ["GPU-a1", "GPU-b2"]
    assert physical_ids("3,5,oops,7", 2) == ["3", "5"]  # CUDA stops at an invalid entry; its count says so


def test_runs_are_spread_over_the_gpus_only_when_they_leave_the_device_to_resnetlab(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_gpus(monkeypatch, [GiB, GiB], visible="3,5")
    configs = [SimpleNamespace(device=device) for device in ("auto", "cuda")]
    assert visible_gpus(configs) == [Place("cuda:0", "3"), Place("cuda:1", "5")]
    assert visible_gpus([*configs, SimpleNamespace(device="cuda:1")]) == []  # one named GPU: as before
    assert visible_gpus([SimpleNamespace(device="cpu")]) == []
    assert visible_gpus([]) == []
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert visible_gpus(configs) == []


def test_a_run_starts_on_the_gpu_with_the_most_budget_left_that_fits_it() -> None:
    gpus = [Place("cuda:0", "0", budget=10), Place("cuda:1", "1", budget=6)]
    # 10 left vs 6; then 6 vs 6 (the one with fewer runs); then only cuda:0 has 4 left; then neither does
    assert first_wave([4, 4, 4, 4, 4], 5, gpus) == [0, 1, 0, None, None]
    assert first_wave([4, 4, 4], 2, gpus) == [0, 1, None]  # no more at once than the cores
    assert first_wave([3, 4], 5, gpus) == [0, 0]  # 7 left on cuda:0, 6 on cuda:1: the busier one has more
    assert first_wave([5, 4], 5, gpus) == [0, 1]  # 5 left on cuda:0, 6 on cuda:1
    assert choose_place(4, [[4], []], gpus, 5) == 1
    assert choose_place(20, [[], []], gpus, 5) == 0  # too large for every budget: alone on the largest
    assert choose_place(20, [[4], []], gpus, 5) is None  # ... once that one is free, not on the smaller idle one


def test_parallel_n_spreads_its_runs_round_robin_with_no_memory_check() -> None:
    gpus = [Place(f"cuda:{i}", str(i)) for i in range(3)]
    assert first_wave([0] * 6, 4, gpus) == [0, 1, 2, 0, None, None]
    assert choose_place(0, [[0], [], [0, 0]], gpus, 4) == 1
    assert first_wave([0] * 3, 2, [placement.SHARED]) == [0, 0, None]  # one device: N at once on it, as before


def test_parallel_auto_gives_each_gpu_a_budget_from_its_own_free_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configs = [resolve_config("paper", overrides={"model": "resnet20", "out": str(tmp_path / str(i))}) for i in range(4)]
    r20 = concurrency.run_memory_estimate(configs[0])
    budgets = [3 * r20 + r20 // 2, r20 + r20 // 2]  # three fit on cuda:0, one on cuda:1
    asked = fake_gpus(monkeypatch, [int(b / concurrency.USABLE_FRACTION) + 1 for b in budgets], visible="3,5")
    monkeypatch.setattr(concurrency, "usable_cores", lambda: 16)
    share = concurrency.auto_parallel(configs)
    assert asked == [torch.device("cuda", 0), torch.device("cuda", 1)]
    assert (share.runs, share.estimates) == (4, [r20] * 4)
    assert share.places == [Place("cuda:0", "3", budgets[0]), Place("cuda:1", "5", budgets[1])]
    assert first_wave(share.estimates, share.runs, share.places) == [0, 0, 1, 0]
    assert re.fullmatch(r"up to 4 at once \(16 CPU cores, 4 run\(s\) to train\) on 2 GPUs while their estimates fit in "
                        r"90% of each one's free memory \(about \d+\.\d GiB per run for resnet20 to \d+\.\d GiB for resnet20\): "
                        r"cuda:0 \(CUDA_VISIBLE_DEVICES=3, \d+\.\d GiB free\) 3, cuda:1 \(CUDA_VISIBLE_DEVICES=5, \d+\.\d GiB free\) 1 "
                        r"start together", share.reason), share.reason


def test_a_single_named_gpu_keeps_one_device_and_its_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configs = [resolve_config("paper", overrides={"model": "resnet20", "device": "cuda:1", "out": str(tmp_path / str(i))})
               for i in range(2)]
    asked = fake_gpus(monkeypatch, [GiB, 40 * GiB])
    monkeypatch.setattr(concurrency, "usable_cores", lambda: 16)
    share = concurrency.auto_parallel(configs)
    assert asked == [torch.device("cuda:1")]
    assert share.places == [Place(budget=int(40 * GiB * concurrency.USABLE_FRACTION))]
    assert " GiB free on cuda:1 (about " in share.reason and share.reason.endswith(": 2 start together")
    assert concurrency.fixed_parallel(configs, 2) == concurrency.Share(2, [placement.SHARED], [], "")


class FakeChildren:
    """Stands in for ``subprocess.Popen`` of ``resnetlab train``: records each child's command and
    environment, and ends it at once with its run folder finished."""

    def __init__(self) -> None:
        self.started: list[tuple[list[str], dict[str, str]]] = []

    def __call__(self, command: list[str], *, env: dict[str, str], **kwargs: Any) -> SimpleNamespace:
        self.started.append((command, env))
        fake_run(Path(next(word for word in command if word.startswith("--out=")).removeprefix("--out=")), "resnet20")
        return SimpleNamespace(pid=1000 + len(self.started), returncode=0, poll=lambda: 0,
                               send_signal=lambda signum: None, wait=lambda: 0)


@pytest.mark.parametrize("device", ["auto", "cuda:1"])
def test_each_child_gets_its_gpu_in_its_environment_its_start_line_and_its_log(
        device: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fake_gpus(monkeypatch, [GiB, GiB], visible="3,5")
    children = FakeChildren()
    monkeypatch.setattr(parallel.subprocess, "Popen", children)
    monkeypatch.setattr(parallel, "read_data_once", lambda jobs, label: None)
    runs = [{"name": name, "model": "resnet20"} for name in "abc"]
    spec = write_sweep(tmp_path / "s.yaml", runs, {"recipe": "paper", "epochs": 2, "device": device})
    sweep(spec, tmp_path / "out", write_report=False, parallel=3)

    lines = capsys.readouterr().out.splitlines()
    gpus = [env["CUDA_VISIBLE_DEVICES"] for _, env in children.started]
    logs = [(tmp_path / "out" / "logs" / f"{name}.log").read_text().splitlines()[0] for name in "abc"]
    if device == "cuda:1":  # one named GPU: every child inherits the sweep's GPUs and picks cuda:1 itself
        assert gpus == ["3,5"] * 3
        assert not any("on cuda:" in line for line in lines)
        return
    assert gpus == ["3", "5", "3"]  # round robin: a and c on GPU 3, b on GPU 5
    assert lines[0] == ("[sweep tiny] --parallel 3: 3 at once on 2 GPUs, the one with fewest runs first, no memory check: "
                        "cuda:0 (CUDA_VISIBLE_DEVICES=3) 2, cuda:1 (CUDA_VISIBLE_DEVICES=5) 1 start together")
    starts = [line for line in lines if ", process " in line]
    assert [line.split(", process ")[0] for line in starts] == [
        "[sweep tiny 1/3] a: training, on cuda:0 (CUDA_VISIBLE_DEVICES=3)",
        "[sweep tiny 2/3] b: training, on cuda:1 (CUDA_VISIBLE_DEVICES=5)",
        "[sweep tiny 3/3] c: training, on cuda:0 (CUDA_VISIBLE_DEVICES=3)"]
    assert [log.split()[:2] for log in logs] == [["$", f"CUDA_VISIBLE_DEVICES={gpu}"] for gpu in "353"]
    command, env = children.started[1]
    assert command[1:4] == ["-m", "resnetlab", "train"] and f"--out={tmp_path / 'out' / 'b'}" in command
    assert {**env, "CUDA_VISIBLE_DEVICES": "3,5"} == parallel.child_environment(3)  # all else as without GPUs


def test_free_memory_is_asked_in_a_child_process_and_in_this_one_only_if_the_child_cannot_tell(monkeypatch) -> None:
    commands, here = [], []

    def child(command, **options):
        commands.append(command)
        return subprocess.CompletedProcess(command, 0, stdout="1000 2000\n", stderr="")

    monkeypatch.setattr(concurrency.subprocess, "run", child)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: here.append(device) or (7, 9))
    gpus = [torch.device("cuda", 0), torch.device("cuda", 1)]
    assert concurrency.free_gpu_memory(gpus) == [1000, 2000] and here == []  # this process opened no CUDA context
    assert commands[0][1:] == ["-c", concurrency.FREE_MEMORY_PROBE, "cuda:0", "cuda:1"]
    monkeypatch.setattr(concurrency.subprocess, "run", lambda command, **options: subprocess.CompletedProcess(command, 1, "", "boom"))
    assert concurrency.free_gpu_memory(gpus) == [7, 7] and here == gpus


def test_a_run_is_estimated_by_the_one_memory_model_plus_its_process(tmp_path: Path) -> None:
    """``--parallel auto`` packs runs by the estimate every command refuses a pass with
    (``models.complexity.memory_needed``), plus what a CUDA process holds besides its step."""
    from resnetlab.models import create_model
    from resnetlab.models.complexity import count_parameters, memory_needed

    plain = resolve_config("paper", overrides={"model": "resnet20", "out": str(tmp_path / "a")})
    averaged = resolve_config("paper", overrides={"model": "resnet20", "ema_decay": 0.99, "out": str(tmp_path / "b")})
    step = memory_needed("resnet20", {}, (3, 32, 32), plain.batch_size, training=True)
    assert concurrency.run_memory_estimate(plain) == concurrency.PROCESS_OVERHEAD + step
    weights = count_parameters(create_model("resnet20")) * 4  # float32: an EMA is one more copy of them
    assert concurrency.run_memory_estimate(averaged) == concurrency.PROCESS_OVERHEAD + step + weights
