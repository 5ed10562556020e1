"""A plain ``state_dict()`` file made into a checkpoint dict: with its ``class_indices.json``, so
that ``Predictor`` treats the weights of the transfer-learning write-ups as one of our runs; with
a dataset, so that layer responses read the published weights of the CIFAR reproductions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from resnetlab.checkpoint import build_checkpoint
from resnetlab.data import DatasetBundle
from resnetlab.data.class_indices import read_class_indices
from resnetlab.data.photos import eval_resize
from resnetlab.errors import ResnetlabError
from resnetlab.memory import check_image_size
from resnetlab.models import create_model
from resnetlab.models.convert import from_reference_cifar
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


def small_weights_checkpoint(model: str, weights: str | Path, bundle: DatasetBundle, *,
                             mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> dict[str, Any]:
    """A checkpoint dict for a plain state dict of a small-image model (the paper's CIFAR nets),
    to be run over ``bundle``: ``model``'s architecture with the tensors in ``weights``, the reference
    CIFAR reproduction's names (``module.``, ``linear``, ``shortcut``) renamed to ours, normalised by
    ``mean``/``std`` (default: the data's own; the reference reproduction trained with ImageNet's)."""
    state, ours = read_state_dict(weights)
    if ours is not None:
        raise ResnetlabError(f"{weights} is a resnetlab checkpoint: pass it (or its run folder) without a model name")
    state = from_reference_cifar(state)
    in_channels = int(state["conv1.weight"].shape[1]) if "conv1.weight" in state else bundle.image_shape[0]
    fc = state.get("fc.weight")
    with torch.device("meta"):
        target = create_model(model, num_classes=int(fc.shape[0]) if fc is not None else bundle.num_classes,
                              in_channels=in_channels)
    _, new = match_weights(target, state, source=str(weights))  # the backbone fits, or a message saying what the weights look like
    if new:
        raise ResnetlabError(f"the weights in {weights} have no trained classifier for {model} ({', '.join(new)} missing or of "
                             "another shape): pass the weights of a trained model")
    if fc.shape[0] != bundle.num_classes or in_channels != bundle.image_shape[0]:
        raise ResnetlabError(f"the weights in {weights} take {in_channels}-channel images into {fc.shape[0]} classes but dataset "
                             f"{bundle.name} has {bundle.image_shape[0]}-channel images of {bundle.num_classes} classes: "
                             "pass the dataset the weights were trained on")
    counters = {k: v for k, v in target.state_dict().items() if k.endswith("num_batches_tracked") and k not in state}
    state = {**state, **{k: torch.zeros((), dtype=torch.long) for k in counters}}  # files of old torch versions lack them
    mean, std = tuple(mean if mean is not None else bundle.mean), tuple(std if std is not None else bundle.std)
    channels = bundle.image_shape[0]
    if len(mean) != channels or len(std) != channels or min(std) <= 0:
        raise ResnetlabError(f"mean {list(mean)} and std {list(std)} must give {channels} value(s) each, std above 0, "
                             f"for the {channels}-channel images of {bundle.name}")
    return build_checkpoint(
        model={"name": model, "num_classes": bundle.num_classes, "in_channels": in_channels, "options": {}},
        classes=list(bundle.classes), mean=mean, std=std, input_size=list(bundle.image_shape),
        preprocess={"pipeline": "small"}, dataset={"name": bundle.name, "data_dir": bundle.location}, state_dict=state,
    )
