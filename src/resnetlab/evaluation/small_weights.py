"""A plain state dict of one of the paper's small-image networks (the CIFAR nets) made into a
checkpoint dict for a dataset, so that what reads our runs (layer responses) reads the weights
the CIFAR reproductions publish too."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from resnetlab.checkpoint import build_checkpoint
from resnetlab.data import DatasetBundle
from resnetlab.errors import ResnetlabError
from resnetlab.models import create_model
from resnetlab.models.convert import from_reference_cifar
from resnetlab.pretrained import match_weights, read_state_dict


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
