"""Safe extraction of downloaded tarballs: nothing outside the target, nothing half-extracted.

Every member is checked before anything is written (no absolute paths, no ``..``, no links
leaving the target), extraction also runs under tarfile's ``data`` filter, and it happens in a
temporary folder that is renamed into place only when the whole archive has been read.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

from resnetlab.errors import ResnetlabError

READ_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error)


def check_member(member: tarfile.TarInfo, archive: Path) -> None:
    """Refuse a member that would land (or link) outside the extraction folder."""
    for name, what in ((member.name, "member"), (member.linkname if member.issym() or member.islnk() else "", "link target")):
        path = PurePosixPath(name)
        if name and (path.is_absolute() or name.startswith(("/", "\\")) or ".." in path.parts):
            raise ResnetlabError(
                f"archive {archive} has a {what} {name!r} outside its folder: refusing to extract it. "
                f"Delete the archive and download it again from the official address"
            )


def extract_tar(archive: Path, target: Path, top: str) -> Path:
    """Extract ``archive`` so that its folder ``top`` appears as ``target/top``, atomically."""
    final = target / top
    target.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target, prefix=f".{top}.", suffix=".part"))
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()  # reads to the end: a truncated archive fails here
            for member in members:
                check_member(member, archive)
            tar.extractall(tmp, members=members, filter="data")
        if not (tmp / top).is_dir():
            raise ResnetlabError(f"archive {archive} has no folder {top}/: delete it and download it again")
        os.replace(tmp / top, final)
    except READ_ERRORS as exc:
        raise ResnetlabError(
            f"archive {archive} is truncated or corrupt ({type(exc).__name__}: {exc}): delete it and download it again"
        ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
