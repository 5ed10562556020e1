"""Model registry: every network is registered by name and built by ``create_model``.

Tests and ``resnetlab models`` iterate ``list_models()``, so a new architecture is covered by
registering it; there is no if/elif chain over names anywhere.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from resnetlab.errors import ResnetlabError, lookup, option
from resnetlab.memory import FLOAT32_BYTES, check_fits


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about a model before building it."""

    name: str
    family: str  # "cifar" (the paper's Section 4.2 nets) or "imagenet" (Table 1 nets)
    depth: int  # weighted layers, as the paper counts them
    input_size: tuple[int, int, int]  # native (C, H, W) of the data it was designed for
    builder: Callable[..., nn.Module]


_REGISTRY: dict[str, ModelInfo] = {}
CLASSIFIER = "fc"  # every registered model names its classifier ``fc``, as torchvision does


def in_classifier(name: str) -> bool:
    """Whether the module or parameter ``name`` (``fc``, ``fc.weight``) is the classifier's."""
    return name == CLASSIFIER or name.startswith(CLASSIFIER + ".")


def register_model(
    name: str, *, family: str, depth: int, input_size: tuple[int, int, int]
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register ``builder(num_classes, in_channels, **options)`` under ``name``."""

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelInfo(name, family, depth, input_size, builder)
        return builder

    return decorate


def list_models(family: str | None = None) -> list[str]:
    """Registered model names (optionally of one family), in registration order."""
    return [n for n, info in _REGISTRY.items() if family is None or info.family == family]


def model_info(name: str) -> ModelInfo:
    """The registry entry for ``name``; an unknown name raises with the closest known names."""
    return lookup(_REGISTRY, name, "model", "Run 'resnetlab models' to list all models.")


def check_model_options(name: str, options: dict[str, Any]) -> ModelInfo:
    """The registry entry for ``name`` once its ``options`` are known to be ones it takes.

    Separate from ``create_model`` so a training config can be checked before any data is read.
    """
    info = model_info(name)
    named = inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY
    parameters = inspect.signature(info.builder).parameters.values()  # a builder's **kwargs are not options
    accepted = {p.name for p in parameters if p.kind in named} - {"num_classes", "in_channels"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ResnetlabError(
            f"model {name!r} does not take option(s) {', '.join(unknown)}; "
            f"it takes: {', '.join(sorted(accepted)) or 'none'}"
        )
    return info


def create_model(name: str, num_classes: int = 10, in_channels: int = 3, **options: Any) -> nn.Module:
    """Build a registered model with fresh (paper) initialisation.

    ``options`` are the model's own keyword options (``shortcut``, ``stem``,
    ``stride_in_1x1``, ``zero_init_residual``); an option the model does not take is an error.
    """
    info = check_model_options(name, options)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ResnetlabError(f"{option('num_classes')} must be a positive whole number, got {num_classes!r}")
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ResnetlabError(f"in_channels must be a positive whole number, got {in_channels!r}")
    check_classifier_fits(info, num_classes, in_channels, options)
    model = info.builder(num_classes=num_classes, in_channels=in_channels, **options)
    model.model_name = name  # type: ignore[assignment]
    return model


def check_classifier_fits(info: ModelInfo, num_classes: int, in_channels: int, options: dict[str, Any]) -> None:
    """Refuse a classifier whose weights alone exceed this machine's memory (``--num-classes 100000000``)
    before it is allocated: the width it reads is taken from the model built on the meta device."""
    with torch.device("meta"):
        head = getattr(info.builder(num_classes=1, in_channels=in_channels, **options), "fc", None)
    if not isinstance(head, nn.Linear):
        return
    features = head.in_features
    check_fits(float(num_classes) * (features + 1) * FLOAT32_BYTES, f"a classifier of {num_classes:,} classes "
               f"({features} x {num_classes:,} float32 weights)", "pass fewer classes")
