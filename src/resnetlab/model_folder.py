"""THE MODEL FOLDER: weights as safetensors beside a ``config.json`` that says what they are.

The layout timm and the model hubs exchange (``model.safetensors``, ``config.json``, a README.md
model card): safetensors holds tensors only, so reading it runs no code (no pickle) and it
memory-maps. ``config.json`` holds what a checkpoint holds beside its weights (the architecture,
the class names in index order, mean/std, the input size, the preprocessing record), so a folder
is read as one of our checkpoints by every command that takes one.

A bare ``.safetensors`` file written by ``export --format safetensors`` carries the same
description in its header's metadata (``safetensors.torch.load_file`` ignores it, so plain
torchvision loads the file unchanged); a ``.safetensors`` file from elsewhere is a plain state dict.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from resnetlab.errors import ResnetlabError

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
MODEL_CARD = "README.md"
SUFFIX = ".safetensors"
DESCRIPTION_FORMAT = "resnetlab-model"  # config.json's "format", and the metadata key of a bare file
DESCRIPTION_VERSION = 1


def is_safetensors(path: str | Path) -> bool:
    """Whether ``path`` names a safetensors file (by its suffix: the format has no magic number)."""
    return Path(path).suffix == SUFFIX


def is_model_folder(path: str | Path) -> bool:
    """A folder holding ``model.safetensors`` (with or without its config.json)."""
    return Path(path).is_dir() and (Path(path) / WEIGHTS).is_file()


def describe(ckpt: dict[str, Any]) -> dict[str, Any]:
    """config.json's content for a checkpoint: everything but its weights and training state."""
    spec = ckpt["model"]
    channels, height, width = ckpt["input_size"]
    return {
        "format": DESCRIPTION_FORMAT, "version": DESCRIPTION_VERSION,
        "model": spec["name"], "model_options": dict(spec.get("options") or {}),
        "num_classes": int(spec["num_classes"]), "in_channels": int(spec["in_channels"]),
        "classes": list(ckpt["classes"]),  # by index: the model's output i is classes[i]
        "mean": list(ckpt["normalization"]["mean"]), "std": list(ckpt["normalization"]["std"]),
        "image_size": height if height == width else [height, width], "input_size": [channels, height, width],
        "preprocess": dict(ckpt.get("preprocess") or {}),  # how a photo becomes the model's input
        "test_views": ckpt.get("test_views"),
        "dataset": dict(ckpt.get("dataset") or {}),
        "training_config": dict(ckpt.get("config") or {}),  # the run's resolved config: eval rebuilds its splits from it
    }


def checkpoint_entries(description: Any, source: str | Path) -> dict[str, Any]:
    """``build_checkpoint``'s keywords (all but ``state_dict``) from a description; a damaged one is named."""
    if not isinstance(description, dict) or description.get("format") != DESCRIPTION_FORMAT:
        raise ResnetlabError(f"{source} does not describe a resnetlab model (no \"format\": \"{DESCRIPTION_FORMAT}\"): "
                             "pass a folder written by resnetlab export --format folder")
    version = description.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version > DESCRIPTION_VERSION:
        raise ResnetlabError(f"{source} was written by a newer resnetlab (model description version {str(version)[:20]}): "
                             "upgrade resnetlab")
    try:
        entries = {
            "model": {"name": _text(description["model"]), "num_classes": _count(description["num_classes"]),
                      "in_channels": _count(description["in_channels"]), "options": _mapping(description.get("model_options"))},
            "classes": [_text(c) for c in description["classes"]],
            "mean": [_number(m) for m in description["mean"]], "std": [_number(s) for s in description["std"]],
            "input_size": [_count(n) for n in description["input_size"]],
            "preprocess": _mapping(description.get("preprocess")),
            "dataset": _mapping(description.get("dataset")), "config": _mapping(description.get("training_config")),
            "test_views": _mapping(description["test_views"]) if description.get("test_views") is not None else None,
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise ResnetlabError(f"{source} is a damaged model description ({_reason(exc)}): export the model again") from None
    if len(entries["classes"]) != entries["model"]["num_classes"]:
        raise ResnetlabError(f"{source} names {len(entries['classes'])} classes for a model of {entries['model']['num_classes']} "
                             "outputs: export the model again")
    return entries


def read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """(the tensors, the model's description or None): the description is config.json beside a
    folder's model.safetensors, else the file's own metadata, else none (a plain state dict)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            state = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ResnetlabError(f"{path} is not a readable safetensors file (truncated or corrupt?): {_reason(exc)}") from None
    config = path.parent / CONFIG
    if path.name == WEIGHTS and config.is_file():
        return state, _read_json(config)
    if DESCRIPTION_FORMAT in metadata:
        try:
            return state, json.loads(metadata[DESCRIPTION_FORMAT])
        except json.JSONDecodeError as exc:
            raise ResnetlabError(f"{path}'s metadata is damaged ({_reason(exc)}): export the model again") from None
    return state, None


def write_safetensors(state_dict: dict[str, torch.Tensor], path: str | Path, description: dict[str, Any] | None = None) -> None:
    """The tensors (contiguous CPU copies: safetensors stores no views) with the description as metadata."""
    from safetensors.torch import save_file

    tensors = {name: tensor.detach().to("cpu").contiguous() for name, tensor in state_dict.items()}
    metadata = {DESCRIPTION_FORMAT: json.dumps(description)} if description is not None else None
    save_file(tensors, str(path), metadata=metadata)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResnetlabError(f"{path} is not valid JSON ({_reason(exc)}): export the model again") from None


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a name, got {str(value)[:40]!r}")
    return value


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"expected a positive whole number, got {str(value)[:40]!r}")
    return value


def _number(value: Any) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {str(value)[:40]!r}")
    return float(value)


def _mapping(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping, got {str(value)[:40]!r}")
    return dict(value)


def _reason(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]
