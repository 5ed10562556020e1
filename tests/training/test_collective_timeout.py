"""A process that stops answering ends the others' wait after ``collective_timeout`` seconds with
one message naming it, instead of hanging them forever: a real two-process gloo group."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import torch

from resnetlab.errors import ResnetlabError
from resnetlab.training import distributed
from resnetlab.training.config import TrainConfig
from resnetlab.training.distributed import Distributed, peer_error

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("stall_worker.py")


@pytest.mark.slow  # three Python processes start (torchrun and two workers), as in the other multi-process tests
def test_a_stalled_rank_ends_the_others_wait_with_one_message_naming_it(tmp_path: Path) -> None:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]), "OMP_NUM_THREADS": "1"}
    # the limit only guards against the hang this test is about; the timeout under test is 3 s
    result = subprocess.run([*launcher, str(WORKER), str(tmp_path), "3"], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "rank0-answered").read_text() == (tmp_path / "rank1-answered").read_text() == "2.0"
    assert (tmp_path / "message").read_text() == ("rank 1 of this 2-process run stopped answering for 3 s (stalled, paused or "
                                                  "stuck reading data), so rank 0 stops: if it was only slow, raise "
                                                  "--collective-timeout")


def test_the_timeout_reaches_the_process_group(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict = {}
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda **kwargs: seen.update(kwargs))
    distributed.init_process_group(Distributed(rank=0, world_size=2), torch.device("cpu"), timeout=4.5)
    assert seen == {"backend": "gloo", "timeout": timedelta(seconds=4.5)}
    distributed.init_process_group(Distributed(rank=0, world_size=2), torch.device("cpu"))
    assert seen["timeout"] == timedelta(seconds=TrainConfig().collective_timeout) == timedelta(minutes=10)


GLOO_TIMEOUT = "[/pytorch/third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 3000ms for recv operation to complete"
NCCL_WATCHDOG = ("[Rank 2] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=7, OpType=ALLREDUCE, NumelIn=1, "
                 "NumelOut=1, Timeout(ms)=600000) ran for 600012 milliseconds before timing out.")


@pytest.mark.parametrize("error, ctx, timeout, expected", [
    (GLOO_TIMEOUT, Distributed(1, 2), None, "rank 0 of this 2-process run stopped answering for 3 s"),
    (GLOO_TIMEOUT, Distributed(3, 8), None, "another process of this 8-process run stopped answering for 3 s"),
    (NCCL_WATCHDOG, Distributed(2, 4), None, "another process of this 4-process run stopped answering for 600 s"),
    ("Wait timed out", Distributed(0, 4), 45.0, "another process of this 4-process run stopped answering for 45 s"),
    ("[gloo/transport/tcp/pair.cc:534] Connection closed by peer [127.0.0.1]:7", Distributed(0, 2), 3.0,
     "another process of this 2-process run stopped (its own message says why), so rank 0 stops too: "),
])
def test_the_message_names_what_can_be_known(error: str, ctx: Distributed, timeout: float | None, expected: str) -> None:
    message = peer_error(RuntimeError(error), ctx, timeout)
    assert isinstance(message, ResnetlabError) and str(message).startswith(expected), message


def test_other_errors_and_single_processes_get_no_peer_message() -> None:
    assert peer_error(RuntimeError("CUDA out of memory"), Distributed(0, 2)) is None
    assert peer_error(RuntimeError(GLOO_TIMEOUT), Distributed()) is None
