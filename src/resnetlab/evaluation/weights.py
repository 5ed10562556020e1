"""A plain ``state_dict()`` file and its ``class_indices.json`` made into a checkpoint dict, so
that ``Predictor`` treats the weights of the transfer-learning write-ups as one of our runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from resnetlab.checkpoint import build_checkpoint
from resnetlab.data.class_indices import read_class_indices
from resnetlab.data.photos import eval_resize
from resnetlab.errors import ResnetlabError
from resnetlab.memory import check_image_size
from resnetlab.models import create_model
from resnetlab.pretrained import match_weights, read_state_dict


def weights_checkpoint(model: str, weights: str | Path, classes: str | Path | list[str], *, image_size: int,
                       mean: tuple[float, ...], std: tuple[float, ...]) -> dict[str, Any]:
    """A checkpoint dict for ``Predictor``: ``model``'s architecture with the tensors in ``weights``
    (checked to fit, with a guess at what they are when not) and the class names in ``classes``."""
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
    resize = eval_resize(image_size)  # the photo is resized to this before the centre crop
    check_image_size((in_channels, resize, resize), 1, f"a photo resized for --image-size {image_size}", "lower --image-size")
    return build_checkpoint(
        model={"name": model, "num_classes": len(names), "in_channels": in_channels, "options": {}},
        classes=names, mean=mean, std=std, input_size=[in_channels, image_size, image_size],
        preprocess={"pipeline": "photos", "resize": resize}, state_dict=state,
    )
