"""Labels checked against the classes when a file is read, not inside cross-entropy later.

A label outside ``0..K-1`` (99, -1, 255) or of another type (text, fractions) means the file is
damaged or belongs to another data set; training on it fails deep inside PyTorch or, worse, fits
the wrong targets. One message names the file, the first bad label and where it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from resnetlab.errors import ResnetlabError


def checked_labels(raw: Any, num_classes: int, path: Path, count: int) -> torch.Tensor:
    """``raw`` (a list or array of ``count`` labels) as int64, each in ``0..num_classes-1``."""
    try:
        array = raw if isinstance(raw, np.ndarray) else np.asarray(raw)
    except (ValueError, TypeError, OverflowError):
        array = np.asarray([], dtype=object)
    if array.dtype.kind not in "iu" or array.ndim != 1:
        example = _first_non_integer(raw)
        raise ResnetlabError(f"{path} holds labels that are not whole numbers ({example}): the file is damaged or "
                             "not of this data set; delete it and run again")
    if len(array) != count:
        raise ResnetlabError(f"{path} holds {len(array)} labels for {count} images: the file is damaged; delete it and run again")
    bad = np.flatnonzero((array < 0) | (array >= num_classes))
    if len(bad):
        first = int(bad[0])
        raise ResnetlabError(f"{path} has {len(bad)} label(s) outside 0..{num_classes - 1} for its {num_classes} classes "
                             f"(e.g. {int(array[first])} for image {first}): the file is damaged or not of this data set; "
                             "delete it and run again")
    return torch.from_numpy(array.astype(np.int64))


def _first_non_integer(raw: Any) -> str:
    if not isinstance(raw, (list, tuple, np.ndarray)):
        return f"one {type(raw).__name__} instead of a list"
    for index, value in enumerate(raw):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            return f"{repr(value)[:40]} for image {index}"
    return "a nested list"
