"""What an image folder held when a run started, so that a resume, ``eval`` or a report can tell it changed.

A run resumed or evaluated on a folder where photos were added, deleted or replaced would go on
silently with other data under the same labels. The fingerprint is, for every class folder of
every split (or of the folder itself when it is not split), the number of images and a digest of
their relative paths and sizes: the images the loader itself reads (``scan.scan_classes``).

What it notices, and what it costs: a photo added, removed, renamed or of another size, for one
``stat`` per file (the scan already lists them), and nothing else, so that the folder may be copied
or moved (``cp -r``, ``rsync`` without ``-t``, another disk) and still be the same data. A photo
rewritten at the same size is not noticed here: the decoded-image cache (``folder.content_key``)
notices it by its ctime and inode, which no copy keeps, and decodes it again. Runs that started
before this rule recorded modification times too (``LEGACY_RULE``); they are compared by that rule.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resnetlab.data.layout import NAME_HASH, PERMUTATION, SPLIT_NAMES
from resnetlab.data.scan import class_folders, scan_classes
from resnetlab.errors import ResnetlabError, option

RULE = "names-sizes"  # data.json's "fingerprint_rule": what the digest holds
LEGACY_RULE = "names-sizes-mtimes"  # data.json without "fingerprint_rule": runs that started before RULE

def folder_fingerprint(data_dir: str | Path, rule: str = RULE) -> dict[str, dict[str, int | str]]:
    """{"train/daisy": {"images": 210, "digest": "3f2a..."}, ...} for the class folders under ``data_dir``."""
    root = Path(data_dir)
    splits = [root / name for name in SPLIT_NAMES if (root / name).is_dir()]
    groups = ([(f"{split.name}/{name}", split / name) for split in splits for name in class_folders(split)]
              if splits else [(name, root / name) for name in class_folders(root)])
    scan = scan_classes([folder for _, folder in groups])
    digests = [hashlib.sha256() for _ in groups]
    counts = [0] * len(groups)
    for path, index in scan.samples:
        stat = os.stat(path)
        mtime = f"\0{stat.st_mtime_ns}" if rule == LEGACY_RULE else ""
        digests[index].update(f"{os.path.relpath(path, root)}\0{stat.st_size}{mtime}\n".encode())
        counts[index] += 1
    return {label: {"images": counts[i], "digest": digests[i].hexdigest()[:16]} for i, (label, _) in enumerate(groups)}


def data_record(data_dir: str | Path, split: dict[str, Any] | None = None) -> dict[str, Any]:
    """data.json for a run starting on the image folder ``data_dir`` (``split``: an unsplit folder's)."""
    record: dict[str, Any] = {"data_dir": str(data_dir), "fingerprint_rule": RULE, "fingerprint": folder_fingerprint(data_dir)}
    if split:
        record["split"] = split
    return record


def split_rule(record: dict[str, Any]) -> str:
    """How the run of ``record`` (its data.json) split an unsplit folder: ``NAME_HASH``, or
    ``PERMUTATION`` for a run that started before that rule (its split record names no rule)."""
    split = record.get("split")
    return split.get("rule", PERMUTATION) if isinstance(split, dict) else NAME_HASH


def data_changes(record: dict[str, Any], data_dir: str | Path) -> list[str]:
    """What differs between the folder the run of ``record`` started on and ``data_dir`` now
    ([]: the same images, or no fingerprint to compare)."""
    saved = record.get("fingerprint")
    if not saved:
        return []
    return fingerprint_changes(saved, folder_fingerprint(data_dir, record.get("fingerprint_rule", LEGACY_RULE)))


def refuse_changed_data(record: dict[str, Any], data_dir: str | Path, cannot: str, accept_changed_data: bool,
                        note: Callable[[str], Any], doing: str = "going on") -> None:
    """Stop ``cannot`` ("cannot resume runs/r56") on images that changed since the run started,
    naming what changed, unless ``accept_changed_data`` (then ``note`` says so: the log, a warning)."""
    changes = data_changes(record, data_dir)
    if not changes:
        return
    detail = "; ".join(changes)
    if accept_changed_data:
        note(f"{doing} on changed data in {data_dir} (--accept-changed-data): {detail}")
        return
    raise ResnetlabError(f"{cannot}: the images in {data_dir} changed since the run started ({detail}): put them back, "
                         f"start a new run, or pass {option('accept_changed_data', True)} to go on with these")


def fingerprint_changes(started: dict[str, dict], now: dict[str, dict], limit: int = 4) -> list[str]:
    """What differs between two fingerprints, a phrase per class folder ([]: the same images)."""
    changes = []
    for label in sorted(set(started) | set(now)):
        was, is_ = started.get(label), now.get(label)
        if was == is_:
            continue
        if was is None:
            changes.append(f"{label} is new ({is_['images']} images)")
        elif is_ is None:
            changes.append(f"{label} is gone (it had {was['images']} images)")
        elif was["images"] != is_["images"]:
            changes.append(f"{label} has {is_['images']} images, it had {was['images']}")
        else:
            changes.append(f"{label} has other or changed images (same count, {is_['images']})")
    return changes[:limit] + ([f"and {len(changes) - limit} more"] if len(changes) > limit else [])
