"""Layer responses (the paper's Fig. 7): the standard deviation of every 3x3 layer's output,
after its BatchNorm and before the addition and the ReLU, over a whole test split.

The paper's evidence that residual functions are closer to zero than unreferenced ones. Which
BatchNorm follows which convolution is read from the model's graph (``torch.fx``), not from
module names, so the CIFAR nets (option A and B shortcuts, plain twins) and the ImageNet
basic and bottleneck blocks are all found the same way. Each such BatchNorm gets one forward
hook for the whole pass; the hook adds its output's sum and sum of squares, in float64, so a
response is the population standard deviation (divisor N, ``correction=0``) over every element
(images x channels x height x width) of the split, whatever the batch size.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.fx
from torch import nn
from tqdm.auto import tqdm

from resnetlab.checkpoint import FORMAT, checkpoint_path, load_checkpoint, read_weights_file
from resnetlab.data import DatasetBundle, load_dataset
from resnetlab.devices import resolve_device
from resnetlab.errors import ResnetlabError, option
from resnetlab.evaluation.evaluate import (
    checkpoint_data,
    data_record_of,
    evaluation_batch_size,
    fitted_batch_size,
    model_and_loader,
)
from resnetlab.evaluation.small_weights import small_weights_checkpoint
from resnetlab.evaluation.view_averaging import ONE_VIEW
from resnetlab.models.registry import model_info

RESPONSE_KERNEL = (3, 3)  # the paper measures its 3x3 layers
_ADDITIONS = (operator.add, operator.iadd, torch.add)


@dataclass(frozen=True)
class ResponseLayer:
    """A 3x3 convolution and the BatchNorm that normalises its output."""

    index: int  # 1, 2, ... in the order the forward pass runs them (the paper's "original order")
    conv: str  # the convolution's module name, e.g. "layer1.0.conv2"
    norm: str  # its BatchNorm's, e.g. "layer1.0.bn2": where the response is read


@dataclass
class LayerResponses:
    """One model's responses over one split: what the CSV and the figure show."""

    name: str  # the run's label in the CSV and the legend
    model: str
    residual: bool  # a ResNet (solid line) or a plain net (dashed), read from its graph
    source: str
    images: int
    layers: list[ResponseLayer]
    stds: list[float]  # population std of each layer's response, in ``layers``' order

    def rows(self) -> list[dict[str, Any]]:
        """CSV rows: run, layer (1-based index), name (the 3x3 convolution), std."""
        return [{"run": self.name, "layer": layer.index, "name": layer.conv, "std": std}
                for layer, std in zip(self.layers, self.stds)]


def model_graph(model: nn.Module) -> torch.fx.Graph:
    """The model's forward pass as a graph of module calls and functions (nothing is run)."""
    try:
        return torch.fx.symbolic_trace(model).graph
    except Exception as exc:  # fx raises many types for code it cannot follow
        name = getattr(model, "model_name", type(model).__name__)
        raise ResnetlabError(f"cannot follow the forward pass of model {name} to find its layers "
                             f"({type(exc).__name__}: {str(exc)[:100]}): responses need a traceable model") from None


def response_layers(model: nn.Module) -> list[ResponseLayer]:
    """Every BatchNorm2d whose input is the output of a 3x3 Conv2d, in forward order."""
    modules = dict(model.named_modules())
    layers: list[ResponseLayer] = []
    for node in model_graph(model).nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
            continue
        source = node.args[0] if node.args else None
        if (isinstance(source, torch.fx.Node) and source.op == "call_module"
                and isinstance(modules[source.target], nn.Conv2d) and modules[source.target].kernel_size == RESPONSE_KERNEL):
            layers.append(ResponseLayer(len(layers) + 1, str(source.target), str(node.target)))
    if not layers:
        name = getattr(model, "model_name", type(model).__name__)
        raise ResnetlabError(f"model {name} has no BatchNorm after a 3x3 convolution: its layer responses "
                             "(Fig. 7) are read there; pass a model with BatchNorm layers")
    return layers


def is_residual(model: nn.Module) -> bool:
    """Whether the forward pass adds tensors (shortcuts): a ResNet, not a plain net."""
    return any(node.op == "call_function" and node.target in _ADDITIONS for node in model_graph(model).nodes)


class ResponseMeter:
    """Forward hooks on the BatchNorms of ``layers``, registered once, summing their outputs.

    The sums stay on the device, in float64 (the CPU's where a device has no float64), so no
    batch waits for a host read; ``stds()`` reads them once at the end. ``close()`` (or leaving
    the ``with`` block) removes the hooks.
    """

    def __init__(self, model: nn.Module, layers: list[ResponseLayer]) -> None:
        self.layers = layers
        self.count = [0] * len(layers)  # elements seen per layer
        self.sums: list[torch.Tensor | float] = [0.0] * len(layers)
        self.squares: list[torch.Tensor | float] = [0.0] * len(layers)
        modules = dict(model.named_modules())
        self._handles = [modules[layer.norm].register_forward_hook(self._hook(i)) for i, layer in enumerate(layers)]

    def _hook(self, i: int) -> Callable[[nn.Module, Any, torch.Tensor], None]:
        def add(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            values = output.detach()
            if values.device.type == "mps":  # no float64 there
                values = values.cpu()
            flat = values.to(torch.float64, memory_format=torch.contiguous_format).view(-1)  # one float64 copy, no more
            self.sums[i] = self.sums[i] + flat.sum()
            self.squares[i] = self.squares[i] + torch.dot(flat, flat)
            self.count[i] += flat.numel()
        return add

    def stds(self) -> list[float]:
        """Population standard deviation (divisor N) of each layer's outputs so far."""
        stds = []
        for n, total, squares in zip(self.count, self.sums, self.squares):
            if n == 0:
                stds.append(float("nan"))
                continue
            mean = float(total) / n
            stds.append(math.sqrt(max(float(squares) / n - mean * mean, 0.0)))
        return stds

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> ResponseMeter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@torch.inference_mode()
def layer_responses(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                    layers: list[ResponseLayer] | None = None) -> list[float]:
    """The std of each of ``layers`` (default: ``response_layers(model)``) over every batch, the
    model in eval mode (BatchNorm with its running statistics, as at test time)."""
    layers = layers if layers is not None else response_layers(model)
    was_training = model.training
    model.eval()
    try:
        with ResponseMeter(model, layers) as meter:
            for images, _ in batches:
                model(images)
            return meter.stds()
    finally:
        model.train(was_training)


def measure_responses(source: str | Path, *, model: str | None = None, dataset: str | None = None,
                      data_dir: str | Path | None = None, mean: Sequence[float] | None = None,
                      std: Sequence[float] | None = None, name: str | None = None, batch_size: int | None = None,
                      device: str | torch.device = "auto", load: Callable[..., DatasetBundle] = load_dataset,
                      accept_changed_data: bool = False, progress: bool = True) -> LayerResponses:
    """The responses of one run folder, checkpoint or plain weights file over its test split.

    A run folder or checkpoint is read as ``eval`` reads it (its data, normalisation, layout);
    a plain state dict (``.pth``/``.th``; the reference CIFAR reproduction's
    ``{"state_dict": {"module.conv1.weight", ...}}`` too) needs ``model`` and ``dataset``, and is
    normalised with the data's own mean and std unless ``mean``/``std`` give the ones it was
    trained with. Always fp32 and one view per image. ``load`` is ``load_dataset`` or a report's cache.
    A run whose image folder changed since it started is refused, as eval refuses it, unless
    ``accept_changed_data``.
    """
    ckpt, bundle = _checkpoint_and_data(source, model, dataset, data_dir, mean, std, load, accept_changed_data)
    device = resolve_device(device)
    batch = fitted_batch_size(ckpt, ONE_VIEW, device, batch_size,
                              evaluation_batch_size(bundle.pipeline, (ckpt.get("config") or {}).get("batch_size"), device))
    net, loader = model_and_loader(ckpt, bundle.test, batch, device)
    layers = response_layers(net)
    label = name or _label(source)
    batches = loader.batches(0)
    if progress:
        batches = tqdm(batches, total=len(loader), desc=f"{label}: responses", unit="batch", leave=False,
                       dynamic_ncols=True, disable=None)  # None: no bar off a terminal
    stds = layer_responses(net, batches, layers)
    broken = [layer for layer, value in zip(layers, stds) if not math.isfinite(value)]
    if broken:
        raise ResnetlabError(f"the responses of {source} are not finite from layer {broken[0].index} ({broken[0].conv}) on: "
                             "its weights or BatchNorm statistics hold NaN or inf, or overflow; pass weights of a working model")
    return LayerResponses(name=label, model=ckpt["model"]["name"], residual=is_residual(net), source=str(source),
                          images=len(bundle.test), layers=layers, stds=stds)


def _checkpoint_and_data(source: str | Path, model: str | None, dataset: str | None, data_dir: str | Path | None,
                         mean: Sequence[float] | None, std: Sequence[float] | None, load: Callable[..., DatasetBundle],
                         accept_changed_data: bool) -> tuple[dict[str, Any], DatasetBundle]:
    if not is_weights_file(source):
        if model is not None or mean is not None or std is not None:
            raise ResnetlabError(f"{source} is a resnetlab run or checkpoint, which names its model and normalisation: "
                                 f"drop {option('model')}, {option('mean')} and {option('std')}")
        path = checkpoint_path(source)
        ckpt = load_checkpoint(path)
        return ckpt, checkpoint_data(ckpt, dataset, data_dir, load=load, record=data_record_of(path),
                                     accept_changed_data=accept_changed_data, cannot=f"cannot measure the responses of {source}")
    if model is None or dataset is None:
        raise ResnetlabError(f"{source} is a plain weights file: pass {option('model', metavar='NAME')} (e.g. resnet20) and "
                             f"{option('dataset', metavar='NAME')} (e.g. cifar10) to say what it is and which test split to read")
    model_info(model)  # an unknown name before any data is read
    bundle = load(name=dataset, data_dir=data_dir)
    ckpt = small_weights_checkpoint(model, source, bundle, mean=mean, std=std)
    return ckpt, bundle


def is_weights_file(source: str | Path) -> bool:
    """Whether ``source`` is a plain weights file (a state dict), not a run folder or one of our checkpoints."""
    path = Path(source)
    if path.is_dir():
        return False  # a run folder (checkpoint_path says what is missing when it is not one)
    content = read_weights_file(path)
    return not (isinstance(content, dict) and content.get("format") == FORMAT)


def _label(source: str | Path) -> str:
    """A run folder's name, a checkpoint's run folder name, or a weights file's stem."""
    path = Path(source)
    if path.is_dir():
        return path.resolve().name
    if path.parent.name == "checkpoints":
        return path.parent.parent.resolve().name
    return path.stem

