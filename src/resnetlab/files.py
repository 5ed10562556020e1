"""Writing files: every way a write can fail becomes one message naming the path.

A full disk, a read-only folder, ``--out`` naming a file where a folder is needed, ``/proc``:
Python raises ``OSError`` subclasses and ``torch.save`` a ``RuntimeError``; the user should see
``cannot write <path>: <reason>`` and nothing else. Shared by training, evaluation and reports.
Reading has the twin ``path_problem``: a FIFO or a folder given where a file is needed is said to
be one, not reported as missing.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from resnetlab.errors import ResnetlabError


class WriteError(ResnetlabError):
    """A file or folder could not be written; the files written before it are untouched."""


TORCH_WRITER_FAILURES = ("PytorchStreamWriter", "file write failed", "unexpected pos")  # torch's zip writer's words


def write_error(path: str | Path, exc: BaseException) -> WriteError:
    """``cannot write <path>: <reason>`` for an ``OSError`` or torch's writer ``RuntimeError``.

    A full disk under ``torch.save`` raises ``OSError`` (errno 28) in the write, and then, as the
    zip writer closes, ``RuntimeError: ... unexpected pos``: the ``OSError`` it carries is the reason."""
    exc = _os_error_in(exc) or exc
    if isinstance(exc, (FileExistsError, NotADirectoryError)) and _file_in_the_way(Path(path)):
        blocker = _file_in_the_way(Path(path))
        reason = "it is a file, not a folder" if blocker == Path(path) else f"{blocker} is a file, not a folder"
    elif isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        culprit = os.fsdecode(exc.filename) if exc.filename is not None else None
        if culprit and Path(culprit) != Path(path) and ".tmp" not in Path(culprit).name:
            reason += f": {culprit}"  # a parent that is a file, a folder that cannot be created
    else:
        reason = _torch_reason(str(exc), Path(path))
    return WriteError(f"cannot write {os.fsdecode(path)}: {reason}")


def is_write_failure(exc: BaseException) -> bool:
    """``OSError``, or the ``RuntimeError`` torch's zip writer raises when a write fails."""
    if isinstance(exc, OSError):
        return True
    return isinstance(exc, RuntimeError) and any(words in str(exc) for words in TORCH_WRITER_FAILURES)


def _os_error_in(exc: BaseException) -> OSError | None:
    """The ``OSError`` that ``exc`` is, or that it was raised from or while handling (torch's writer)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


@contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Turn a failed write inside the block into ``cannot write <path>: <reason>``."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        if not is_write_failure(exc):
            raise
        raise write_error(path, exc) from None


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary file beside ``path`` for the block to write, renamed over ``path`` when the block
    succeeds and deleted when it fails: ``path`` is always the old file or the whole new one, never
    half of one. Failed writes become ``cannot write <path>: <reason>`` (``writing``)."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
        os.close(fd)
    tmp = Path(name)
    try:
        with writing(path):
            yield tmp
            os.chmod(tmp, plain_file_mode())  # mkstemp's 0600 would hide a run or report from everyone else
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def plain_file_mode() -> int:
    """The mode a plain ``open(path, "w")`` gives a new file: 0o666 less the umask (0644 under 022)."""
    return 0o666 & ~current_umask()


def current_umask() -> int:
    """The process's umask, read without changing it where Linux says it (/proc), else set and restored."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _file_in_the_way(path: Path) -> Path | None:
    """The path itself or the nearest existing ancestor, when it is a file where a folder must be."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


def _torch_reason(message: str, path: Path) -> str:
    """torch says 'file write failed' without the cause: a full disk is the usual one, so look."""
    try:
        stats = os.statvfs(path.parent if path.parent.exists() else ".")
        if stats.f_bavail == 0:
            return os.strerror(errno.ENOSPC)
    except OSError:
        pass
    line = message.strip().splitlines()[0] if message.strip() else "write failed"
    return line.split("] ", 1)[-1].strip(" .") or "write failed"  # drop torch's "[enforce fail at file.cc:N]"


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename: never a half-written file.
    A full disk reads "cannot write <path>: No space left on device" and the old file is kept."""
    import torch  # here, not at the top: the command line's --help reads this module without torch

    with replacing(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def path_problem(path: str | Path) -> str | None:
    """None for a regular file (or a link to one); else what ``path`` is, for a message that begins
    with the path: "does not exist", "is a folder", "is a FIFO, not a regular file"..."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if os.path.islink(path):
            return f"is a broken link (to {os.readlink(path)})"
        return "does not exist" if isinstance(exc, FileNotFoundError) else f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    return "is a folder" if stat.S_ISDIR(mode) else f"is {file_kind(mode)}, not a regular file"


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is, in words ("a FIFO", "a folder", ...)."""
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    return next((name for test, name in kinds if test(mode)), "a special file")


def link_problem(path: str | Path) -> str | None:
    """``path is a link to <target>: ...`` when ``path`` is a symbolic link, else None.

    A folder we own (a run folder) writes only to regular files it owns: a link planted there would
    make an append or a lock write through to wherever it points."""
    path = Path(path)
    if not path.is_symlink():
        return None
    return (f"{path} is a link to {os.readlink(path)}, and a run folder writes only to its own files: "
            f"delete the link (rm {path}) and run again")


def open_no_follow(path: str | Path, flags: int, mode: int = 0o666) -> int:
    """``os.open`` that never follows a link at ``path`` (``O_NOFOLLOW``): a link is refused by name."""
    try:
        return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP or Path(path).is_symlink():
            raise WriteError(link_problem(path) or f"cannot write {path}: it is a link") from None
        raise


def open_append(path: str | Path, newline: str | None = None) -> Any:
    """``path`` opened for appending text, created if missing, never through a link (``open_no_follow``)."""
    fd = open_no_follow(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    return os.fdopen(fd, "a", encoding="utf-8", newline=newline)
