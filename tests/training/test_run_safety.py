"""Nothing is lost or overwritten: the run-folder lock, --overwrite that keeps the old run until
the new one has started, a full disk, and weights that are no longer finite."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from resnetlab import run_lock as run_lock_module
from resnetlab.errors import ResnetlabError
from resnetlab.files import WriteError
from resnetlab.run_lock import LOCK_NAME, RunLock, RunLocked
from resnetlab.runs import RunFolder
from resnetlab.training import train
from resnetlab.training.step import NonFiniteLoss
from tests.builders import make_trainer, tiny_config


def hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_second_train_into_the_same_folder_is_refused_while_the_first_runs(tmp_path, bundle):
    out = tmp_path / "run"
    refused = []

    def start_a_second_run(iteration: int) -> None:
        if iteration == 2:
            with pytest.raises(RunLocked, match=rf"{out} is in use by process {os.getpid()} on {socket.gethostname()}"):
                train(tiny_config(out, epochs=1, seed=7), bundle=bundle)
            refused.append(iteration)

    summary = train(tiny_config(out, epochs=1), bundle=bundle, on_iteration=start_a_second_run)
    assert refused == [2] and summary["iterations"] == 6
    assert yaml.safe_load((out / "config.yaml").read_text())["seed"] == 0  # the first run's config, untouched
    assert len((out / "metrics.csv").read_text().splitlines()) == 2  # header + its one epoch
    assert not (out / LOCK_NAME).exists()  # released when the run ends


@pytest.mark.slow  # another process holds or held the lock: the whole suite runs it, the quick tier does not
def test_a_lock_held_by_a_living_process_refuses_and_is_taken_over_once_it_dies(tmp_path, bundle):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, json, os, socket, sys\n"
        f"fd = os.open({str(out / LOCK_NAME)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, json.dumps({'pid': os.getpid(), 'host': socket.gethostname()}).encode())\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLocked, match=f"in use by process {holder.pid}"):
            train(tiny_config(out, epochs=1), bundle=bundle)
        assert not (out / "config.yaml").exists()
    finally:
        holder.kill()  # dies without releasing anything: the kernel drops its flock
        holder.wait()
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == holder.pid  # the dead owner's file is still there
    assert train(tiny_config(out, epochs=1), bundle=bundle)["iterations"] == 6
    assert not (out / LOCK_NAME).exists()


@pytest.mark.slow  # another process holds or held the lock: the whole suite runs it, the quick tier does not
def test_a_lock_file_of_a_dead_process_is_taken_over(tmp_path, bundle):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK_NAME).write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname()}))
    assert train(tiny_config(out, epochs=1), bundle=bundle)["iterations"] == 6


@pytest.mark.slow  # another process holds or held the lock: the whole suite runs it, the quick tier does not
def test_without_flock_the_owners_pid_decides(tmp_path, monkeypatch):
    """File systems without flock: alive pid on this host (or any pid on another host) refuses; dead pid is taken over."""
    monkeypatch.setattr(run_lock_module, "fcntl", None)
    lock_file = tmp_path / LOCK_NAME
    for owner, refused in (({"pid": os.getppid(), "host": socket.gethostname()}, True),
                           ({"pid": dead_pid(), "host": socket.gethostname()}, False),
                           ({"pid": 1, "host": "another-machine"}, True)):
        lock_file.write_text(json.dumps(owner))
        lock = RunLock(tmp_path)
        if refused:
            with pytest.raises(RunLocked, match=f"process {owner['pid']} on {owner['host']}"):
                lock.acquire()
        else:
            lock.acquire()
            assert json.loads(lock_file.read_text())["pid"] == os.getpid()
            lock.release()
            assert not lock_file.exists()


def test_overwrite_keeps_the_old_run_until_the_new_one_has_started(tmp_path, bundle, monkeypatch):
    out = tmp_path / "run"
    train(tiny_config(out, epochs=1), bundle=bundle)
    old, names = hashes(out), sorted(p.name for p in out.iterdir())

    def no_data(config, *rule):
        raise ResnetlabError("image folder /nowhere does not exist")

    monkeypatch.setattr("resnetlab.training.run.load_data", no_data)
    with pytest.raises(ResnetlabError, match="/nowhere"):
        train(tiny_config(out, epochs=1, seed=3), overwrite=True)
    assert hashes(out) == old and sorted(p.name for p in out.iterdir()) == names  # no .replaced, no run.lock left
    monkeypatch.undo()
    assert train(tiny_config(out, epochs=1, seed=3), bundle=bundle, overwrite=True)["iterations"] == 6
    assert yaml.safe_load((out / "config.yaml").read_text())["seed"] == 3
    assert not any(p.name.startswith(".replaced") for p in out.iterdir())


def test_a_run_set_aside_by_an_overwrite_that_died_comes_back(tmp_path, bundle):
    out = tmp_path / "run"
    train(tiny_config(out, epochs=1), bundle=bundle)
    old = hashes(out)
    dying = RunFolder(out)
    dying.prepare(resume=False, overwrite=True)  # the old run is moved aside ...
    assert not (out / "config.yaml").exists()  # ... and the process dies before the new run starts
    with pytest.raises(ResnetlabError, match="already holds a run"):
        train(tiny_config(out, epochs=1, seed=3), bundle=bundle)
    assert hashes(out) == old


def test_finetune_into_its_own_run_folder_with_overwrite_loads_its_weights_first(tmp_path):
    from resnetlab.cli import main
    from tests.test_bad_input_table import TRAIN, write_folder_dataset

    data = write_folder_dataset(tmp_path / "data")
    run = tmp_path / "run"
    assert main(["train", *TRAIN, "--data-dir", str(data), "--out", str(run)]) == 0
    before = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["state_dict"]
    assert main(["finetune", "--init-from", str(run), "--out", str(run), "--overwrite", "--data-dir", str(data),
                 "--max-iters", "1", "--batch-size", "4", "--lr", "0", "--weight-decay", "0", "--device", "cpu", "--quiet"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert "fc.weight" in summary["pretrained"]["loaded"] and summary["pretrained"]["new"] == []
    after = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["state_dict"]
    assert torch.equal(after["fc.weight"], before["fc.weight"])  # lr 0: the loaded weights themselves
    assert not (run / ".replaced").exists()


def test_a_full_disk_keeps_the_last_checkpoint_and_the_run_resumable(tmp_path, bundle, monkeypatch):
    out = tmp_path / "run"
    train(tiny_config(out, epochs=1), bundle=bundle)
    last = (out / "checkpoints" / "last.pt").read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("resnetlab.checkpoint.torch.save", disk_full)
    with pytest.raises(WriteError, match=f"cannot write {out}/checkpoints/last.pt: No space left on device"):
        train(tiny_config(out, epochs=2), bundle=bundle, resume=True)
    assert (out / "checkpoints" / "last.pt").read_bytes() == last
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last.pt"]  # no temporary file; no best.pt without val
    assert not (out / LOCK_NAME).exists()
    monkeypatch.undo()
    summary = train(tiny_config(out, epochs=2), bundle=bundle, resume=True)
    assert summary["iterations"] == 12 and len((out / "metrics.csv").read_text().splitlines()) == 3


def test_a_full_train_log_stops_the_run_with_one_message(tmp_path, bundle, monkeypatch):
    out = tmp_path / "run"

    def disk_full(self):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("resnetlab.runs._LogFile.flush", disk_full)
    with pytest.raises(WriteError, match=f"cannot write {out.resolve()}/train.log: No space left on device"):
        train(tiny_config(out, epochs=1, quiet=False), bundle=bundle)


def test_non_finite_weights_are_never_saved(tmp_path):
    trainer = make_trainer(tmp_path / "run")
    trainer.progress.iteration = 7
    trainer.check_finite_weights()  # finite: no error
    with torch.no_grad():
        trainer.model.layer2[0].bn1.running_var[3] = float("inf")
    with pytest.raises(NonFiniteLoss, match=r"weights became non-finite \(layer2.0.bn1.running_var\) by iteration 7"):
        trainer.check_finite_weights()
    trainer.run.close()


def test_a_learning_rate_that_overflows_ends_with_an_error_and_no_bad_checkpoint(tmp_path, bundle):
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLoss, match="(nan|inf).*lower lr"):
        train(tiny_config(out, lr=1e6, epochs=2), bundle=bundle)
    for path in (out / "checkpoints").glob("*.pt"):
        state = torch.load(path, weights_only=True)["state_dict"]
        assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point()), path
    assert not (out / "summary.json").exists()
