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
    home = os.path.realpath(class_dir)
    found: list[str] = []
    for folder, dirs, files in os.walk(class_dir):  # followlinks=False: a linked folder is listed, never entered
        entered = []
        for name in sorted(d for d in dirs if not d.startswith(".")):
            path = os.path.join(folder, name)
            if os.path.islink(path):
                passed.append(f"{path} ({_folder_link(path, home)})")
            else:
                entered.append(name)
        dirs[:] = entered
        for name in sorted(f for f in files if not f.startswith(".")):
            path = os.path.join(folder, name)
            why = _not_a_photo(path, home, homes, seen)
            if why:
                passed.append(f"{path} ({why})")
            else:
                seen.add(os.path.realpath(path))
                found.append(path)
    return sorted(found)


def _not_a_photo(path: str, home: str, homes: list[str], seen: set[str]) -> str | None:
    """None for a photo to read, else why ``path`` is passed over."""
    if not path.lower().endswith(IMG_EXTENSIONS):
        return "not an image: no image extension"
    kind = _regular_file(path)
    if kind is not None:
        return kind
    real = os.path.realpath(path)
    if os.path.islink(path):
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


def _regular_file(path: str) -> str | None:
    """None for a regular file, else what it is instead."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return "a broken link" if os.path.islink(path) else (exc.strerror or "unreadable")
    return None if stat.S_ISREG(mode) else f"{file_kind(mode)}, not a regular file"

