"""What an image folder held when a run started, so that a resume can tell it changed.

A run resumed on a folder where photos were added or deleted would go on silently with other
data under the same labels. The fingerprint is, for every class folder of every split (or of
the folder itself when it is not split), the number of images and a digest of their relative
paths, sizes and modification times: the images the loader itself reads (``scan.scan_classes``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from resnetlab.data.layout import SPLIT_NAMES
from resnetlab.data.scan import class_folders, scan_classes


def folder_fingerprint(data_dir: str | Path) -> dict[str, dict[str, int | str]]:
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
        digests[index].update(f"{os.path.relpath(path, root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        counts[index] += 1
    return {label: {"images": counts[i], "digest": digests[i].hexdigest()[:16]} for i, (label, _) in enumerate(groups)}


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
