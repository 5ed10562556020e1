"""``class_indices.json``: the index -> class-name mapping that travels with runs and weights.

A run folder's is written by ``runs.RunFolder`` as ``{"0": "daisy", "1": "dandelion", ...}``, the
form the transfer-learning write-ups save beside a ``state_dict()``; the older ``{"daisy": 0, ...}``
form is read too."""

from __future__ import annotations

import json
import os
from pathlib import Path

from resnetlab.errors import ResnetlabError
from resnetlab.files import path_problem


def read_class_indices(path: str | os.PathLike) -> list[str]:
    """Class names ordered by index, from a ``class_indices.json`` of either form; anything else is
    one message naming the file and what is wrong with it."""
    expected = 'expected {"0": "class name", "1": ...}: indices 0..n-1 as strings, each a different non-empty name'
    if (problem := path_problem(path)) is not None:  # a FIFO would block the read
        raise ResnetlabError(f"class indices file {path} {problem}: pass a class_indices.json file")
    try:
        text = Path(path).read_bytes().decode("utf-8")
        mapping = json.loads(text, object_pairs_hook=_pairs)
    except OSError as exc:
        raise ResnetlabError(f"cannot read class indices file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ResnetlabError(f"class indices file {path} is not UTF-8 text (byte {exc.start}): {expected}") from None
    except json.JSONDecodeError as exc:
        raise ResnetlabError(f"class indices file {path} is not JSON ({exc.msg}, line {exc.lineno}): {expected}") from None
    except ValueError as exc:  # a key given twice (_pairs)
        raise ResnetlabError(f"class indices file {path}: {exc}: {expected}") from None
    names, problem = _names(mapping)
    if problem:
        raise ResnetlabError(f"class indices file {path}: {problem}: {expected}")
    return names


def _pairs(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A JSON object that names no key twice (``json`` would keep the last silently)."""
    mapping: dict[str, object] = {}
    for key, value in pairs:
        if key in mapping:
            raise ValueError(f"the key {key!r} is given twice")
        mapping[key] = value
    return mapping


def _names(mapping: object) -> tuple[list[str], str | None]:
    """(class names by index, None) or ([], what is wrong) for ``{"0": "daisy", ...}`` or the older ``{"daisy": 0, ...}``."""
    if not isinstance(mapping, dict) or not mapping:
        return [], f"it holds {type(mapping).__name__ if mapping else 'nothing'}, not a JSON object of classes"
    indexed = [k.isdigit() and k.isascii() for k in mapping]
    if all(indexed):
        pairs = [(int(k), k, v) for k, v in mapping.items()]
    elif any(indexed):
        return [], "its keys mix indices and class names"
    else:  # the older form, class name -> index
        wrong = next(((k, v) for k, v in mapping.items() if isinstance(v, bool) or not isinstance(v, int)), None)
        if wrong:
            return [], f"{wrong[0]!r} maps to {json.dumps(wrong[1])}, not an index"
        pairs = [(v, str(v), k) for k, v in mapping.items()]
    bad = next(((key, name) for _, key, name in pairs if not isinstance(name, str) or not name.strip()), None)
    if bad:
        return [], f"the class of index {bad[0]} is {json.dumps(bad[1])}, not a class name"
    indices = sorted(i for i, _, _ in pairs)
    if indices != list(range(len(pairs))) or any(key != str(i) for i, key, _ in pairs):
        shown = ", ".join(key for _, key, _ in sorted(pairs)[:10])
        return [], f"the indices are {shown}, not 0..{len(pairs) - 1}"
    names = [name for _, _, name in sorted(pairs)]
    seen: set[str] = set()  # linear: a 200,000-class file is read in a blink, not in minutes
    twice = next((n for n in names if n in seen or seen.add(n)), None)
    if twice is not None:
        return [], f"the class name {twice!r} is given to more than one index"
    return names, None
