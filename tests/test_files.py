"""Every failed write is one message naming the path, and the file that was there is kept:
torch.save's own ways of failing on a full disk included."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest
import torch

import resnetlab.checkpoint as checkpoint_module
from resnetlab.checkpoint import atomic_save
from resnetlab.files import WriteError, replacing

UNEXPECTED_POS = "[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"
WRITER_FAILED = "[enforce fail at inline_container.cc:595] . PytorchStreamWriter failed writing file data/3: file write failed"


def full_disk_as_torch_reports_it(*args, **kwargs):
    """What torch.save raises when the disk fills: the OSError of the write, then, while the zip
    writer closes, a RuntimeError about the position it expected."""
    try:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    except OSError:
        raise RuntimeError(UNEXPECTED_POS)  # noqa: B904  (chained implicitly, as torch's __exit__ does)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


def test_a_full_disk_under_torch_save_is_one_message_and_the_old_checkpoint_stays(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "last.pt"
    atomic_save({"epoch": 1}, path)
    monkeypatch.setattr(checkpoint_module.torch, "save", full_disk_as_torch_reports_it)
    with pytest.raises(WriteError) as caught:
        atomic_save({"epoch": 2}, path)
    assert str(caught.value) == f"cannot write {path}: No space left on device"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # shown alone, without the two torch tracebacks
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("free_blocks, reason", [(0, "No space left on device"), (1000, "PytorchStreamWriter failed writing file data/3: "
                                                                                          "file write failed")])
def test_torchs_writer_error_without_a_cause_says_whether_the_disk_is_full(tmp_path: Path, monkeypatch, free_blocks, reason) -> None:
    path = tmp_path / "last.pt"

    def fail(*args, **kwargs):
        raise RuntimeError(WRITER_FAILED)

    class Stats:
        f_bavail = free_blocks

    monkeypatch.setattr(checkpoint_module.torch, "save", fail)
    monkeypatch.setattr("resnetlab.files.os.statvfs", lambda folder: Stats())
    with pytest.raises(WriteError, match="^cannot write .*last.pt: (.*)$") as caught:
        atomic_save({"epoch": 2}, path)
    assert str(caught.value) == f"cannot write {path}: {reason}"
    assert not path.exists() and leftovers(tmp_path) == []


def test_an_unrelated_runtime_error_is_no_write_failure(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="^a bug$"), replacing(tmp_path / "f.bin"):
        raise RuntimeError("a bug")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def tiny_filesystem(tmp_path: Path):
    """A 200 KiB tmpfs (needs root and mount rights, else the test is skipped)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder = tmp_path / "tiny"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("this machine does not let a tmpfs be mounted")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_checkpoint_bigger_than_a_real_disk_is_one_message_and_the_old_one_stays(tiny_filesystem: Path) -> None:
    path = tiny_filesystem / "last.pt"
    atomic_save({"weights": torch.ones(1000)}, path)
    with pytest.raises(WriteError) as caught:
        atomic_save({"weights": torch.zeros(100_000)}, path)  # 400 KB on 200 KiB
    assert str(caught.value) == f"cannot write {path}: No space left on device"
    assert torch.equal(torch.load(path, weights_only=True)["weights"], torch.ones(1000))
    assert [p.name for p in tiny_filesystem.iterdir()] == ["last.pt"]
