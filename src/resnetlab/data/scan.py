"""Finding the images of a class folder, safely: symlinks followed once, never in a loop.

torchvision's ``make_dataset`` walks with ``followlinks=True`` and no memory of where it has
been, so a directory link to a parent turns 48 images into thousands, and a FIFO named
``x.jpg`` hangs the decoder. Here every directory is entered once (by its real path), and only
regular files count; what is passed over is returned so that it can be named.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from torchvision.datasets.folder import IMG_EXTENSIONS

from resnetlab.errors import ResnetlabError


def class_folders(split_dir: Path) -> list[str]:
    """Sorted names of the class folders in ``split_dir`` (hidden ones left out)."""
    try:
        entries = [e for e in os.scandir(split_dir) if not e.name.startswith(".") and _is_dir(e.path)]
    except OSError as exc:
        raise ResnetlabError(f"cannot read {split_dir}: {exc.strerror or exc}") from None
    if not entries:
        raise ResnetlabError(f"{split_dir} has no class folders: put images in {split_dir}/<class>/")
    return sorted(e.name for e in entries)


def image_files(class_dir: Path) -> tuple[list[str], list[str]]:
    """(sorted image paths under ``class_dir``, passed-over entries with the reason)."""
    found: list[str] = []
    passed: list[str] = []
    seen: set[str] = set()
    for folder, dirs, files in os.walk(class_dir, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            passed.append(f"{folder} (a link back to a folder already read)")
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            if not name.lower().endswith(IMG_EXTENSIONS):
                continue
            kind = _regular_file(path)
            if kind is None:
                found.append(path)
            else:
                passed.append(f"{path} ({kind})")
    return sorted(found), passed


def _is_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except OSError:  # dangling or looping link
        return False


def _regular_file(path: str) -> str | None:
    """None for a regular file, else what it is instead."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return "a broken link" if os.path.islink(path) else (exc.strerror or "unreadable")
    if not stat.S_ISREG(mode):
        return "not a regular file"
    return None
