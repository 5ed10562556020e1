"""Finding the images of class folders, safely: every photo read once, under the class it lives in.

torchvision's ``make_dataset`` walks with ``followlinks=True`` and no memory of where it has
been, so a link to a parent folder turns 36 images into thousands, each under the label of the
folder the link sits in, and a FIFO named ``x.jpg`` hangs the decoder. Here links are resolved
to real paths: a link to a folder is never entered (it points outside its class folder, or back
into it: a loop or a second copy); a link to a file inside another class folder (or this one)
is passed over, since that file is read where it lives; a link to a file outside every class
folder (a folder of links into a photo store) is read, once. Only regular files with an image
extension count; everything passed over is returned with the reason, so that it can be named.
Hidden entries (names starting with a dot, as ``.DS_Store`` or ``._photo.jpg``) are left out, as
hidden class folders are.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from torchvision.datasets.folder import IMG_EXTENSIONS

from resnetlab.errors import ResnetlabError
from resnetlab.files import file_kind

NAMED = 10  # entries a message names; the rest are counted ("and 7 more")


def listed(entries: Sequence[str], limit: int = NAMED) -> str:
    """``entries`` joined by "; ", the first ``limit`` named and the rest counted."""
    more = f"; and {len(entries) - limit} more" if len(entries) > limit else ""
    return "; ".join(entries[:limit]) + more


def class_folders(split_dir: Path) -> list[str]:
    """Sorted names of the class folders in ``split_dir`` (hidden ones left out)."""
    try:
        entries = [e for e in os.scandir(split_dir) if not e.name.startswith(".") and _is_dir(e.path)]
    except OSError as exc:
        raise ResnetlabError(f"cannot read {split_dir}: {exc.strerror or exc}") from None
    if not entries:
        raise ResnetlabError(f"{split_dir} has no class folders: put images in {split_dir}/<class>/")
    return sorted(e.name for e in entries)


@dataclass
class ClassScan:
    """The photos of some class folders: (path, class index) pairs, and what was passed over."""

    samples: list[tuple[str, int]] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)  # "path (why)"
    empty: list[str] = field(default_factory=list)  # class folders without a photo


def scan_classes(class_dirs: Sequence[Path], all_class_dirs: Sequence[Path] = ()) -> ClassScan:
    """The photos of ``class_dirs`` (class index = position), each read once by its real path.

    ``all_class_dirs`` are every class folder of the data set (both splits): a link to a file in
    any of them is passed over, since the file is read in its own folder, under its own label."""
    homes = sorted({os.path.realpath(d) for d in (*class_dirs, *all_class_dirs)})
    scan, seen = ClassScan(), set()
    for index, class_dir in enumerate(class_dirs):
        found = _class_images(Path(class_dir), homes, seen, scan.passed)
        scan.samples += [(path, index) for path in found]
        if not found:
            scan.empty.append(str(class_dir))
    return scan


def _class_images(class_dir: Path, homes: list[str], seen: set[str], passed: list[str]) -> list[str]:
    """Sorted image paths under ``class_dir``; what is passed over is appended to ``passed``."""
    found: list[str] = []
    home = os.path.realpath(class_dir)
    _walk(str(class_dir), home, home, homes, seen, passed, found)
    return sorted(found)


def _walk(folder: str, real_folder: str, home: str, homes: list[str], seen: set[str], passed: list[str],
          found: list[str]) -> None:
    """The photos under ``folder`` (whose real path is ``real_folder``) added to ``found``: its links
    to folders, then its files, in name order, then its subfolders. ``os.scandir`` says which entries
    are links without a system call, so only a link is resolved: any other entry's real path is its
    folder's plus its name (a folder of 60,000 photos costs a few ``realpath`` calls, not 120,000)."""
    try:
        with os.scandir(folder) as listing:
            entries = sorted((e for e in listing if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError:  # as os.walk: a folder that cannot be listed holds nothing
        return
    folders, files = [], []
    for entry in entries:
        (folders if _is_folder(entry) else files).append(entry)
    passed += [f"{e.path} ({_folder_link(e.path, home)})" for e in folders if e.is_symlink()]  # listed, never entered
    for entry in files:
        real = os.path.realpath(entry.path) if entry.is_symlink() else os.path.join(real_folder, entry.name)
        why = _not_a_photo(entry, real, home, homes, seen)
        if why:
            passed.append(f"{entry.path} ({why})")
        else:
            seen.add(real)
            found.append(entry.path)
    for entry in folders:
        if not entry.is_symlink():
            _walk(entry.path, os.path.join(real_folder, entry.name), home, homes, seen, passed, found)


def _not_a_photo(entry: os.DirEntry, real: str, home: str, homes: list[str], seen: set[str]) -> str | None:
    """None for a photo to read, else why ``entry`` (real path ``real``) is passed over."""
    if not entry.name.lower().endswith(IMG_EXTENSIONS):
        return "not an image: no image extension"
    link = entry.is_symlink()
    if link or not entry.is_file(follow_symlinks=False):  # a regular file needs no system call to say so
        kind = _regular_file(entry.path)
        if kind is not None:
            return kind
    if link:
        if _inside(real, home):
            return f"a link to {real}, read as itself"
        owner = next((h for h in homes if _inside(real, h)), None)
        if owner is not None:
            return f"a link to {real}: read in its own class folder {owner}"
    if real in seen:
        return f"{real} again: read once"
    return None


def _folder_link(path: str, home: str) -> str:
    real = os.path.realpath(path)
    if _inside(home, real):
        return f"a link back to {real}, a folder above it: a loop"
    if _inside(real, home):
        return f"a link to {real}, read as itself"
    return f"a link to the folder {real}, outside its class folder"


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _is_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except OSError:  # dangling or looping link
        return False


def _is_folder(entry: os.DirEntry) -> bool:
    """Whether ``entry`` is a folder or a link to one (a dangling or looping link is not)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _regular_file(path: str) -> str | None:
    """None for a regular file, else what it is instead."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return "a broken link" if os.path.islink(path) else (exc.strerror or "unreadable")
    return None if stat.S_ISREG(mode) else f"{file_kind(mode)}, not a regular file"

