"""Streamed photos across processes: two on one machine, two torchrun "nodes" meeting over a c10d
rendezvous on 127.0.0.1, each tracking a one-process run; a failing rank stops the others."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from resnetlab.runs import read_metrics
from tests.builders import make_photo_folder

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("ddp_photo_worker.py")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]

pytestmark = pytest.mark.usefixtures("data_cache")  # each test its own image-folder cache


def environment(tmp_path: Path) -> dict[str, str]:
    # this checkout's sources first: where resnetlab is not installed (run from the checkout), REPO alone finds no resnetlab
    pythonpath = os.pathsep.join([str(REPO / "src"), str(REPO)])
    return {**os.environ, "PYTHONPATH": pythonpath, "OMP_NUM_THREADS": "1", "RESNETLAB_DATA": str(tmp_path / "cache")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def losses(run: Path) -> list[float]:
    return [float(r["train_loss"]) for r in read_metrics(run / "metrics.csv")]


@pytest.fixture(scope="module")
def setting(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("ddp-photos")
    data = make_photo_folder(tmp / "photos", per_class=8)
    single = tmp / "single"
    subprocess.run([sys.executable, str(WORKER), str(single), str(data)], cwd=REPO, env=environment(tmp), check=True, timeout=600)
    return {"tmp": tmp, "data": data, "single": losses(single)}


def assert_tracks_one_process(run: Path, single: list[float]) -> None:
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["iterations"] == 2 * 2
    assert losses(run) == pytest.approx(single, rel=0.02), (losses(run), single)


@pytest.mark.slow
def test_two_processes_on_one_machine(setting) -> None:
    out = setting["tmp"] / "standalone"
    command = TORCHRUN + ["--standalone", "--nproc_per_node=2", str(WORKER), str(out), str(setting["data"])]
    result = subprocess.run(command, cwd=REPO, env=environment(setting["tmp"]), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_tracks_one_process(out, setting["single"])


def launch_nodes(setting: dict, out: Path, data_for_node: tuple[Path, Path], program: list[str] | None = None) -> list:
    """Two torchrun agents of one process each, as on two machines, meeting at a c10d rendezvous."""
    port = free_port()
    procs = []
    for node in (0, 1):
        command = TORCHRUN + ["--nnodes=2", "--nproc_per_node=1", f"--node-rank={node}", "--rdzv-backend=c10d",
                              f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=photos", "--max-restarts=0"]
        command += [part.replace("DATA", str(data_for_node[node])) for part in program] if program else \
            [str(WORKER), str(out), str(data_for_node[node])]
        procs.append(subprocess.Popen(command, cwd=REPO, env=environment(setting["tmp"]), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=600)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    return results


@pytest.mark.slow
def test_two_nodes_over_a_c10d_rendezvous(setting) -> None:
    out = setting["tmp"] / "nodes"
    results = launch_nodes(setting, out, (setting["data"], setting["data"]))
    assert [r.returncode for r in results] == [0, 0], results[0].stderr[-2000:] + results[1].stderr[-2000:]
    assert_tracks_one_process(out, setting["single"])


@pytest.mark.slow
def test_a_failing_rank_brings_the_other_down_with_a_message(setting) -> None:
    out = setting["tmp"] / "failing"
    command = ["-m", "resnetlab", "train", "--model", "resnet20", "--dataset", "folder", "--data-dir", "DATA", "--image-size", "32",
               "--batch-size", "4", "--max-iters", "4", "--device", "cpu", "--workers", "1", "--quiet", "--out", str(out)]
    results = launch_nodes(setting, out, (setting["data"], setting["tmp"] / "no-such-folder"), command)
    assert all(r.returncode != 0 for r in results)  # and neither hangs: communicate() returned within its timeout
    assert "resnetlab: error: image folder" in results[1].stderr and "no-such-folder does not exist" in results[1].stderr
    assert "resnetlab: error: another process of this 2-process run stopped" in results[0].stderr
    assert "[rank0]: Traceback" not in results[0].stderr
