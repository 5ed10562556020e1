"""``class_indices.json``: the index -> class-name mapping that travels with runs and weights.

Written as ``{"0": "daisy", "1": "dandelion", ...}``, the form the transfer-learning write-ups
save beside a ``state_dict()``; the older ``{"daisy": 0, ...}`` form is read too."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from resnetlab.errors import ResnetlabError


def write_class_indices(classes: list[str], path: str | os.PathLike) -> Path:
    """Write ``{"index": "class name"}`` atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({str(i): name for i, name in enumerate(classes)}, f, indent=2)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def read_class_indices(path: str | os.PathLike) -> list[str]:
    """Class names ordered by index, from a ``class_indices.json`` of either form."""
    try:
        mapping = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(mapping, dict) or not mapping:
            raise ValueError("not a non-empty JSON object")
        pairs = [(int(k), v) if all(c.isdigit() for c in k) else (int(v), k) for k, v in mapping.items()]
        names = [str(name) for _, name in sorted(pairs)]
        if sorted(i for i, _ in pairs) != list(range(len(pairs))):
            raise ValueError(f"the indices are not 0..{len(pairs) - 1}")
        return names
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise ResnetlabError(f"cannot read class indices from {path} ({exc}): expected {{\"0\": \"class\", ...}} JSON") from None
