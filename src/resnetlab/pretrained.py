"""Starting a model from other weights: one of our checkpoints or a torchvision state dict.

Fine-tuning keeps everything that fits, starts the classifier afresh when the class count
changes, and adapts the first convolution when the images have another channel count (an RGB
network fine-tuned on grayscale images). Anything else that does not fit (another depth,
another stem, another shortcut type) means the weights belong to another network, and copying
"whatever matches" would silently train a half-random model, so it is refused with a message
naming the likely architecture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from resnetlab.checkpoint import FORMAT, check_checkpoint, describe_misfit, read_weights_file
from resnetlab.errors import ResnetlabError
from resnetlab.models import create_model, list_models
from resnetlab.models.registry import in_classifier, model_info

INPUT_CONVOLUTION = "conv1.weight"  # every registered model names its first convolution ``conv1``
# Option sets that change tensor names or shapes, tried when guessing where weights come from.
_SHAPE_OPTIONS = {"cifar": ({}, {"shortcut": "B"}), "imagenet": ({}, {"stem": "cifar"})}


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """(state dict, our checkpoint or None) from a checkpoint, a bare state dict or a common wrapper."""
    source = read_weights_file(path)
    if isinstance(source, dict) and source.get("format") == FORMAT:
        return check_checkpoint(source, path)["state_dict"], source
    for key in ("state_dict", "model"):  # Lightning / timm-style wrappers around the state dict
        if isinstance(source, dict) and isinstance(source.get(key), dict) and _all_tensors(source[key]):
            source = source[key]
            break
    if not isinstance(source, dict) or not source or not _all_tensors(source):
        raise ResnetlabError(f"{path} is neither a resnetlab checkpoint nor a state dict (name -> tensor): pass model weights")
    if all(k.startswith("module.") for k in source):  # saved from DistributedDataParallel
        source = {k[len("module.") :]: v for k, v in source.items()}
    return source, None


def load_pretrained(model: nn.Module, path: str | Path) -> dict[str, list[str]]:
    """Copy the weights in ``path`` into ``model``: {"loaded", "new", "adapted": [names]}.

    The classifier stays freshly initialised when its shape differs (another class count); the
    first convolution is adapted when the images have another channel count ("adapted").
    Raises ``ResnetlabError`` when the backbone does not fit.
    """
    state, _ = read_state_dict(path)
    state, adapted = adapt_input_channels(model, state)
    loaded, new = match_weights(model, state, source=str(path))
    counters = [k for k in _counters(model) if k in state]  # BatchNorm step counts: kept, not reported
    model.load_state_dict({k: state[k] for k in loaded + counters}, strict=False)
    return {"loaded": loaded, "new": new, "adapted": adapted}


def adapt_input_channels(model: nn.Module, state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(``state`` with its first convolution fitted to ``model``'s input channels, [its name] or []).

    Only the input channel count may differ: anything else is another network, for
    ``match_weights`` to refuse.
    """
    own, given = model.state_dict().get(INPUT_CONVOLUTION), state.get(INPUT_CONVOLUTION)
    if own is None or given is None or own.shape == given.shape:
        return state, []
    if own.ndim != 4 or given.ndim != 4 or (own.shape[0], *own.shape[2:]) != (given.shape[0], *given.shape[2:]):
        return state, []
    return {**state, INPUT_CONVOLUTION: input_filters(given, own.shape[1])}, [INPUT_CONVOLUTION]


def input_filters(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """First-convolution filters learnt on ``weight.shape[1]`` channels, for ``in_channels`` channels.

    Why this works: a gray image fed to an RGB network is R = G = B, so summing the filters over
    their channels gives one channel the very response the network learnt. Other counts repeat
    the learnt channels in turn, scaled so that the response keeps its size (timm's
    ``adapt_input_conv`` does the same).
    """
    learnt = weight.shape[1]
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = -(-in_channels // learnt)
    return weight.repeat(1, repeats, 1, 1)[:, :in_channels] * (learnt / in_channels)


def match_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> tuple[list[str], list[str]]:
    """(names to copy, names left new); raise if anything outside the classifier does not fit."""
    own = model.state_dict()
    counters = _counters(model) | {k for k in state if k.endswith("num_batches_tracked")}
    missing = [k for k in own if k not in state and k not in counters and not in_classifier(k)]
    unexpected = [k for k in state if k not in own and k not in counters]
    reshaped = [k for k in own if k in state and k not in counters and own[k].shape != state[k].shape]
    misfit = [k for k in reshaped if not in_classifier(k)]
    if missing or unexpected or misfit:
        raise ResnetlabError(_misfit_message(model, state, source, missing, unexpected, misfit))
    loaded = [k for k in own if k in state and k not in counters and k not in reshaped]
    new = [k for k in own if k not in counters and k not in loaded]
    return loaded, new


def guess_model(state: dict[str, torch.Tensor]) -> dict[str, Any] | None:
    """The registered architecture whose tensor names and shapes match ``state`` (classifier aside).

    Returns {"name", "num_classes", "in_channels", "options"} or None. Models are built on the
    meta device, so trying every registered network costs no memory and little time.
    """
    if "fc.weight" not in state or "conv1.weight" not in state:
        return None
    num_classes, in_channels = state["fc.weight"].shape[0], state["conv1.weight"].shape[1]
    # The paper's depth counts weighted layers: every convolution outside the shortcuts, plus fc.
    depth = 1 + sum(1 for k, v in state.items() if v.ndim == 4 and "downsample" not in k)
    for name in (n for n in list_models() if model_info(n).depth == depth):
        for options in _SHAPE_OPTIONS.get(model_info(name).family, ({},)):
            if name.startswith("plain") and options:
                continue
            with torch.device("meta"):
                candidate = create_model(name, num_classes=num_classes, in_channels=in_channels, **options)
            own = candidate.state_dict()
            wanted = {k for k in own if not k.endswith("num_batches_tracked")}
            given = {k for k in state if not k.endswith("num_batches_tracked")}
            if wanted == given and all(own[k].shape == state[k].shape for k in wanted):
                return {"name": name, "num_classes": num_classes, "in_channels": in_channels, "options": options}
    return None


def _counters(model: nn.Module) -> set[str]:
    return {k for k in model.state_dict() if k.endswith("num_batches_tracked")}


def _all_tensors(d: dict) -> bool:
    return all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in d.items())


def _misfit_message(model: nn.Module, state: dict[str, torch.Tensor], source: str,
                    missing: list[str], unexpected: list[str], misfit: list[str]) -> str:
    name = getattr(model, "model_name", type(model).__name__)
    reasons = describe_misfit(model.state_dict(), state, missing, unexpected, misfit)
    guess = guess_model(state)
    hint = f"they look like {guess['name']}{_options_text(guess['options'])} weights" if guess else "pass weights of the same architecture"
    return f"weights in {source} do not fit the backbone of {name}: {reasons}; {hint}"


def _options_text(options: dict[str, Any]) -> str:
    return f" ({', '.join(f'{k}={v}' for k, v in options.items())})" if options else ""
