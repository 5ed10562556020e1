"""``class_indices.json``: the class-name -> index mapping that travels with runs and checkpoints."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from resnetlab.errors import ResnetlabError


def write_class_indices(classes: list[str], path: str | os.PathLike) -> Path:
    """Write ``{"class name": index}`` atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({name: i for i, name in enumerate(classes)}, f, indent=2)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def read_class_indices(path: str | os.PathLike) -> list[str]:
    """Class names ordered by index, from a ``class_indices.json``."""
    try:
        mapping = json.loads(Path(path).read_text())
        return [name for name, _ in sorted(mapping.items(), key=lambda item: int(item[1]))]
    except (OSError, ValueError, AttributeError) as exc:
        raise ResnetlabError(f"cannot read class indices from {path} ({exc}): expected {{\"class\": index}} JSON") from None
