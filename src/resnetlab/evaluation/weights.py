"""A plain ``state_dict()`` file and its ``class_indices.json`` made into a checkpoint dict, so
that ``Predictor`` treats the weights of the transfer-learning write-ups as one of our runs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from resnetlab.checkpoint import build_checkpoint
from resnetlab.data.class_indices import read_class_indices
from resnetlab.data.photos import DEFAULT_CROP, IMAGENET_MEAN, IMAGENET_STD, eval_resize
from resnetlab.errors import ResnetlabError, option
from resnetlab.memory import check_image_size
from resnetlab.models import create_model
from resnetlab.pretrained import match_weights, read_state_dict
from resnetlab.runs import PREPROCESS, WEIGHTS, holds_run, read_json


def weights_checkpoint(model: str, weights: str | Path, classes: str | Path | list[str], *, image_size: int | None = None,
                       mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> dict[str, Any]:
    """A checkpoint dict for ``Predictor``: ``model``'s architecture with the tensors in ``weights``
    (checked to fit, with a guess at what they are when not) and the class names in ``classes``.

    How images are fed to it: a run's weights.pth has preprocess.json beside it (the run's mean, std,
    input size, resize, EXIF rule and test views); ``mean``/``std``/``image_size`` replace what it says.
    Weights from elsewhere are fed as torchvision's ImageNet models are (ImageNet mean and std, a
    224 crop); a run's weights.pth without preprocess.json (an older run) are refused unless ``mean``
    and ``std`` are given, since its own normalization is in its checkpoint."""
    names = read_class_indices(classes) if not isinstance(classes, list) else list(classes)
    state, ours = read_state_dict(weights)
    if ours is not None:
        raise ResnetlabError(f"{weights} is a resnetlab checkpoint: pass it (or its run folder) as CHECKPOINT, without --weights")
    in_channels = int(state["conv1.weight"].shape[1]) if "conv1.weight" in state else 3
    fc = state.get("fc.weight")
    with torch.device("meta"):
        target = create_model(model, num_classes=int(fc.shape[0]) if fc is not None else len(names), in_channels=in_channels)
    _, new = match_weights(target, state, source=str(weights))  # the backbone fits, or a message saying what the weights look like
    if new:
        raise ResnetlabError(f"the weights in {weights} have no trained classifier for {model} ({', '.join(new)} missing or of "
                             "another shape): pass the state_dict() saved after fine-tuning")
    if fc.shape[0] != len(names):
        raise ResnetlabError(f"the weights in {weights} classify into {fc.shape[0]} classes but {classes} names {len(names)}: "
                             "pass the class_indices.json saved with these weights")
    feed = _feeding(Path(weights), in_channels, image_size, mean, std)
    return build_checkpoint(
        model={"name": model, "num_classes": len(names), "in_channels": in_channels, "options": {}},
        classes=names, state_dict=state, **feed,
    )


def _feeding(weights: Path, in_channels: int, image_size: int | None, mean: Sequence[float] | None,
             std: Sequence[float] | None) -> dict[str, Any]:
    """mean, std, input_size, preprocess and test_views for ``weights`` (see ``weights_checkpoint``)."""
    sidecar_path = weights.parent / PREPROCESS
    advice = f"delete it, or pass {option('mean')}, {option('std')} and {option('image_size')}"
    sidecar = read_json(sidecar_path, advice) if sidecar_path.is_file() else {}
    if not sidecar and weights.name == WEIGHTS and holds_run(weights.parent) and (mean is None or std is None):
        raise ResnetlabError(f"{weights} belongs to the run in {weights.parent}, which has no {PREPROCESS} (an older run) to say "
                             f"how it normalised its images: pass the run folder instead (resnetlab predict {weights.parent} "
                             f"IMAGE...), or the run's {option('mean')} and {option('std')}")
    mean = _channels("mean", mean if mean is not None else sidecar.get("mean", IMAGENET_MEAN), in_channels)
    std = _channels("std", std if std is not None else sidecar.get("std", IMAGENET_STD), in_channels)
    if any(s <= 0 for s in std):
        raise ResnetlabError(f"std must be positive numbers, one per channel, got {list(std)}")
    if image_size is None and sidecar.get("input_size"):
        input_size = [int(n) for n in sidecar["input_size"]]
        preprocess = {k: sidecar[k] for k in ("pipeline", "resize", "exif_orientation") if k in sidecar}
    else:
        image_size = image_size or DEFAULT_CROP
        input_size, preprocess = [in_channels, image_size, image_size], {"pipeline": "photos", "resize": eval_resize(image_size)}
    side = preprocess.get("resize", max(input_size[1:]))  # a photo is resized to this before the centre crop
    check_image_size((in_channels, side, side), 1, f"a photo resized for {option('image_size', input_size[-1])}",
                     f"lower {option('image_size')}")
    return {"mean": mean, "std": std, "input_size": input_size, "preprocess": preprocess, "test_views": sidecar.get("test_views")}


def _channels(name: str, values: Sequence[float], in_channels: int) -> list[float]:
    """One finite number per input channel (a single number serves every channel)."""
    values = [float(v) for v in values]
    values = values * in_channels if len(values) == 1 else values
    if len(values) != in_channels or not all(math.isfinite(v) for v in values):
        raise ResnetlabError(f"{name} must be {in_channels} finite number(s), one per input channel of the weights, got {values}")
    return values
