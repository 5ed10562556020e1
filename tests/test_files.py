"""Every failed write is one message naming the path, and the file that was there is kept:
torch.save's own ways of failing on a full disk included."""

from __future__ import annotations

import ast
import csv
import errno
import os
import re
import subprocess
from pathlib import Path

import pytest
import torch

import resnetlab
import resnetlab.checkpoint as checkpoint_module
from resnetlab.checkpoint import atomic_save
from resnetlab.evaluation import evaluate
from resnetlab.files import WriteError, replacing
from resnetlab.runs import write_config
from resnetlab.training import resolve_config
from resnetlab.training.config import read_run_config
from tests.builders import make_checkpoint, make_image_folder

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


@pytest.mark.slow  # mount and umount processes: the whole suite runs it, the quick tier does not
def test_a_checkpoint_bigger_than_a_real_disk_is_one_message_and_the_old_one_stays(tiny_filesystem: Path) -> None:
    path = tiny_filesystem / "last.pt"
    atomic_save({"weights": torch.ones(1000)}, path)
    with pytest.raises(WriteError) as caught:
        atomic_save({"weights": torch.zeros(100_000)}, path)  # 400 KB on 200 KiB
    assert str(caught.value) == f"cannot write {path}: No space left on device"
    assert torch.equal(torch.load(path, weights_only=True)["weights"], torch.ones(1000))
    assert [p.name for p in tiny_filesystem.iterdir()] == ["last.pt"]


# A failure half-way through a file (the disk fills): the file that was there before is what stays.

def full_disk() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_config_cut_off_by_a_full_disk_keeps_the_previous_config(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "config.yaml"
    write_config(resolve_config("paper", overrides={"epochs": 3}).to_dict(), path)
    before = path.read_bytes()
    written = {}

    def half_then_full(self: Path, text: str, *args, **kwargs) -> int:
        with open(self, "w") as f:  # the first half reaches the disk, then it is full
            written[self.name] = f.write(text[: len(text) // 2])
        raise full_disk()

    monkeypatch.setattr(Path, "write_text", half_then_full)
    with pytest.raises(WriteError) as caught:
        write_config(resolve_config("paper", overrides={"epochs": 7}).to_dict(), path)
    monkeypatch.undo()
    assert str(caught.value) == f"cannot write {path}: No space left on device"
    assert written and all(n > 0 for n in written.values())  # something was written, to another file
    assert path.read_bytes() == before and read_run_config(path).epochs == 3
    assert leftovers(tmp_path) == []


def test_an_eval_csv_cut_off_by_a_full_disk_keeps_the_previous_csv(tmp_path: Path, monkeypatch) -> None:
    data = make_image_folder(tmp_path / "data", size=16)
    checkpoint = make_checkpoint(tmp_path / "run" / "tiny.pt")
    evaluate(checkpoint, dataset="folder", data_dir=data, device="cpu", out=tmp_path / "run")
    table = tmp_path / "run" / "eval-test-confusion.csv"
    before = table.read_bytes()
    assert before.startswith(b"true \\ predicted,cat,dog,fox")
    real_writer = csv.writer

    class FillingWriter:
        """csv.writer whose file fills up after the header row."""

        def __init__(self, f, *args, **kwargs) -> None:
            self.rows, self.inner, self.file = 0, real_writer(f, *args, **kwargs), f

        def writerow(self, row):
            if self.rows == 1:
                self.file.flush()  # the header is on disk
                raise full_disk()
            self.rows += 1
            return self.inner.writerow(row)

    monkeypatch.setattr(csv, "writer", FillingWriter)
    with pytest.raises(WriteError) as caught:
        evaluate(checkpoint, dataset="folder", data_dir=data, device="cpu", out=tmp_path / "run")
    monkeypatch.undo()
    assert str(caught.value) == f"cannot write {table}: No space left on device"
    assert table.read_bytes() == before
    assert leftovers(tmp_path / "run") == []


# Every file the package writes goes through files.py (a temporary file, then a rename), but for
# these, which are not whole files rewritten: each says why it may write in place.
SRC = Path(resnetlab.__file__).parent
IN_PLACE_WRITES = {
    ("runs.py", "append_metrics"): "metrics.csv grows by one row per epoch; an append never touches the rows before it",
    ("training/run_log.py", "tensorboard_writer"): "tensorboard's event file is a log its SummaryWriter appends to",
    ("sweeps/parallel.py", "start"): "a sweep run's console log, appended line by line as the run prints",
    ("runs.py", "_open"): "train.log, appended line by line by logging's FileHandler (never through a link)",
    ("run_lock.py", "acquire"): "the lock file holds the owner's pid under flock: it must be one file, opened in place",
    ("data/download.py", "_fetch_verified"): "a download streamed to a temporary file and renamed once its MD5 matches; "
                                             "its OSErrors are network failures the mirror loop tries the next mirror on",
    ("evaluation/export.py", "_write_exported_program"): "serializes into memory; write_bytes writes the file",
    ("evaluation/export.py", "_write_torchscript"): "serializes into memory; write_bytes writes the file",
    ("evaluation/export.py", "write_bytes"): "writes the temporary file export() gets from replacing(), in Python: "
                                             "torch's C++ writer aborts the process on a full disk",
    ("evaluation/export.py", "_write_onnx"): "writes the temporary file export() gets from replacing()",
    ("evaluation/model_export.py", "export_folder"): "writes the files of a staging folder (mkdtemp beside --out) that takes "
                                                     "the name --out whole, only once read back and checked",
}
MODE = re.compile(r"^[rwxabt+]*[wxa+][rwxabt+]*(:[a-z0-9*]*)?$")  # open()'s modes that write
WRITERS = {"write_text", "write_bytes", "savefig", "to_csv", "FileHandler", "SummaryWriter", "mkstemp", "NamedTemporaryFile",
           "open_append", "open_no_follow"}  # the last two: files.py's appends that never follow a link
DUMPS_TO_A_FILE = {"torch.save", "torch.jit.save", "torch.export.save", "torch.onnx.export", "np.save", "numpy.save",
                   "json.dump", "pickle.dump"}


def dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return "?"


def writes_a_file(call: ast.Call) -> bool:
    name = dotted(call.func)
    last = name.rsplit(".", 1)[-1]
    if last in WRITERS or name in DUMPS_TO_A_FILE:
        return True
    if name in ("yaml.safe_dump", "yaml.dump"):
        return len(call.args) > 1 or any(k.arg == "stream" for k in call.keywords)
    if name == "os.open":
        return any(flag in ast.dump(call) for flag in ("O_WRONLY", "O_RDWR", "O_CREAT", "O_APPEND"))
    if last in ("open", "fdopen"):
        modes = [a for a in [*call.args, *(k.value for k in call.keywords if k.arg == "mode")] if isinstance(a, ast.Constant)]
        return any(isinstance(m.value, str) and MODE.match(m.value) for m in modes)
    return False


class InPlaceWrites(ast.NodeVisitor):
    """(function, line) of every call that writes a file outside a ``with replacing(...)`` block."""

    def __init__(self) -> None:
        self.function, self.atomic, self.found = "<module>", 0, []

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        outer, self.function = self.function, node.name
        self.generic_visit(node)
        self.function = outer

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_With(self, node: ast.With) -> None:
        entered = 0
        for item in node.items:  # `with replacing(p) as tmp, tmp.open("w")`: the open is inside
            self.visit(item)
            if isinstance(item.context_expr, ast.Call) and dotted(item.context_expr.func).endswith("replacing"):
                self.atomic, entered = self.atomic + 1, entered + 1
        for statement in node.body:
            self.visit(statement)
        self.atomic -= entered

    def visit_Call(self, node: ast.Call) -> None:
        if not self.atomic and writes_a_file(node):
            self.found.append((self.function, node.lineno))
        self.generic_visit(node)


def in_place_writes() -> dict[tuple[str, str], list[int]]:
    found: dict[tuple[str, str], list[int]] = {}
    for path in sorted(SRC.rglob("*.py")):
        module = path.relative_to(SRC).as_posix()
        if module == "files.py":  # where the temporary file and the rename are
            continue
        finder = InPlaceWrites()
        finder.visit(ast.parse(path.read_text(), str(path)))
        for function, line in finder.found:
            found.setdefault((module, function), []).append(line)
    return found


def test_every_file_the_package_writes_is_written_whole_through_files_py() -> None:
    found = in_place_writes()
    unexplained = {f"{module}:{lines[0]} in {function}()" for (module, function), lines in found.items()
                   if (module, function) not in IN_PLACE_WRITES}
    assert not unexplained, ("write these with files.replacing (or atomic_save), or add them to IN_PLACE_WRITES "
                             f"with the reason they may write in place: {sorted(unexplained)}")
    assert not IN_PLACE_WRITES.keys() - found.keys(), "IN_PLACE_WRITES names a function that no longer writes in place"


@pytest.mark.parametrize("line", ['open(p, "w")', 'p.open("a", newline="")', 'os.fdopen(fd, "wb")', "p.write_text(s)",
                                  "fig.savefig(p)", "torch.save(x, p)", "json.dump(d, f)", "yaml.safe_dump(d, f)",
                                  "os.open(p, os.O_WRONLY | os.O_CREAT)"])
def test_the_static_check_sees_each_way_of_writing(line: str) -> None:
    finder = InPlaceWrites()
    finder.visit(ast.parse(f"def f():\n    {line}\n    with replacing(p) as tmp, tmp.open('w') as g:\n        {line}\n"))
    assert finder.found == [("f", 2)]


def test_appends_and_locks_never_follow_a_link(tmp_path) -> None:
    """train.log, metrics.csv and run.lock are opened with O_NOFOLLOW: a planted link is refused by name."""
    from resnetlab.files import open_append
    from resnetlab.run_lock import RunLock

    victim = tmp_path / "victim.txt"
    victim.write_text("someone else's\n")
    (tmp_path / "train.log").symlink_to(victim)
    with pytest.raises(WriteError, match=r"train.log is a link to .*victim.txt, and a run folder writes only to its own files"):
        open_append(tmp_path / "train.log")
    (tmp_path / "run.lock").symlink_to(victim)
    with pytest.raises(WriteError, match=r"run.lock is a link to .*victim.txt"):
        RunLock(tmp_path).acquire()
    assert victim.read_text() == "someone else's\n"
    with open_append(tmp_path / "real.log") as f:
        f.write("a line\n")
    assert (tmp_path / "real.log").read_text() == "a line\n"
