"""One process at a time in a run folder: a lock file naming the pid and host of the process that holds it.

Two ``train`` commands into one ``--out`` would interleave ``metrics.csv`` rows and leave the
config of one run beside the checkpoint of the other. The holding process keeps an ``flock`` on the lock
file, which the kernel drops when that process dies however it dies (``kill -9`` included), so a
dead process's lock is taken over without asking. Where ``flock`` is not supported the pid is
checked instead (on this host; a lock from another host is refused while its file exists).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from resnetlab.errors import ResnetlabError
from resnetlab.files import open_no_follow

LOCK_NAME = "run.lock"

try:
    import fcntl
except ImportError:  # Windows: the pid check alone
    fcntl = None  # type: ignore[assignment]


class RunLocked(ResnetlabError):
    """Another living process writes into this run folder."""


class RunLock:
    """``acquire()`` or raise ``RunLocked``; ``release()`` removes the lock file."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        for _ in range(10):  # only repeats when the lock file was replaced under us
            fd = open_no_follow(self.path, os.O_RDWR | os.O_CREAT, 0o666)  # the umask decides; a planted link is refused
            try:
                locked = self._flock(fd)
                if locked is False or (locked is None and _alive(read_owner(self.path))):
                    raise RunLocked(self._refusal())
                if not _same_file(fd, self.path):
                    os.close(fd)
                    continue  # the previous holder removed the file after we opened it: start again
                os.ftruncate(fd, 0)
                os.write(fd, json.dumps(_me()).encode())
                os.fsync(fd)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            return
        raise RunLocked(self._refusal())

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            if read_owner(self.path).get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    @staticmethod
    def _flock(fd: int) -> bool | None:
        """True: locked; False: another process holds it; None: this file system has no flock."""
        if fcntl is None:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            return None

    def _refusal(self) -> str:
        owner = read_owner(self.path)
        who = f"process {owner.get('pid', '?')} on {owner.get('host', '?')}"
        since = f" since {owner['started']}" if owner.get("started") else ""
        return (f"{self.path.parent} is in use by {who}{since}: wait for it to finish or stop it, or pass another "
                f"--out (if that process is gone, delete {self.path})")


def read_owner(path: Path) -> dict[str, Any]:
    """The lock file's {"pid", "host", "started"} ({} when missing or unreadable)."""
    try:
        owner = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _me() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}


def _alive(owner: dict[str, Any]) -> bool:
    """Whether the process holding the lock still runs (a lock from another host counts as alive)."""
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return False
    if owner.get("host") != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False
