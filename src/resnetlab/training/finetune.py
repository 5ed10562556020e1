"""``finetune``: a ``train`` call with the fine-tune recipe, starting from other weights.

The architecture comes from the weights: our checkpoints name their model, a bare (torchvision)
state dict is matched against the registry. The weights are checked against that architecture
before any data is read, so a wrong file fails in a second, not after loading a dataset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from resnetlab.errors import ResnetlabError, option
from resnetlab.models import create_model
from resnetlab.pretrained import guess_model, match_weights, read_state_dict

RECIPE = "fine-tune"


def finetune(
    init_from: str | Path,
    *,
    data_dir: str | Path | None,
    out: str | Path,
    dataset: str = "folder",
    model: str | None = None,
    freeze_backbone: bool = False,
    epochs: int | None = None,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    overwrite: bool = False,
    recipe: str = RECIPE,
    command: str | None = None,
) -> dict[str, Any]:
    """Fine-tune the weights in ``init_from`` (a checkpoint, run folder or torchvision file) on ``dataset`` into the run folder ``out``.

    ``recipe`` is "fine-tune" (Adam 1e-4, 10 epochs) or "transfer" (the torchvision transfer-
    learning settings for photos: Adam 1e-4, 3 epochs, batch 16, RandomResizedCrop(224) + flip,
    ImageNet normalisation), or any other shipped recipe.

    ``model`` overrides the architecture read from ``init_from``; ``overrides`` are any other
    ``TrainConfig`` fields. Returns the run's summary.json content, whose ``pretrained`` entry
    lists the weights that were loaded and those that start new (the classifier, for new classes).
    ``command`` is what summary.json records as repeating the run (None: the ``resnetlab.train`` call).
    """
    from resnetlab.training import resolve_config, train  # the training stack, loaded on use

    spec = architecture_of(init_from, model)
    values: dict[str, Any] = {
        "model": spec["name"], "model_options": spec["options"], "dataset": dataset,
        "data_dir": str(data_dir) if data_dir is not None else None, "out": str(out),
        "init_from": str(init_from), "freeze_backbone": freeze_backbone,
    }
    if epochs is not None:
        values["epochs"] = epochs
    if spec.get("image_size") and recipe != "transfer":
        values["image_size"] = spec["image_size"]
    values.update(overrides or {})
    config = resolve_config(recipe, config_file, values)
    return train(config, overwrite=overwrite, command=command)


def architecture_of(source: str | Path, model: str | None = None) -> dict[str, Any]:
    """{"name", "options", "image_size"} of the network ``source`` holds; raises if it cannot fit ``model``."""
    state, ckpt = read_state_dict(source)
    if ckpt is not None:
        name, options = ckpt["model"]["name"], dict(ckpt["model"].get("options") or {})
        in_channels, height, width = ckpt["input_size"]
        image_size = height if height == width else None  # our data resized to the size the model learnt
    else:
        guess = guess_model(state)
        if guess is None and model is None:
            raise ResnetlabError(f"cannot tell which registered model the weights in {source} belong to: pass {option('model')}")
        name, options = (guess["name"], guess["options"]) if guess else (model, {})
        in_channels, image_size = int(state["conv1.weight"].shape[1]) if "conv1.weight" in state else 3, None
    if model is not None and model != name:
        name, options = model, {}
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        target = create_model(name, num_classes=1, in_channels=in_channels, **options)
    match_weights(target, state, source=str(source))  # raises when the backbone does not fit
    return {"name": name, "options": options, "image_size": image_size}
