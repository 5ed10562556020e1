"""``summary(model, input_size)``: the per-layer table ``resnetlab summary`` prints, as a value.

A notebook shows it as the same text (``repr``); ``as_dict()`` is what ``--json`` prints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from resnetlab.errors import ResnetlabError
from resnetlab.models.complexity import LayerRow, count_macs, count_parameters, layer_summary
from resnetlab.models.registry import create_model, model_info


@dataclass(frozen=True)
class ModelSummary:
    """A model's layers in forward order (output shape for one image, parameters, MACs) and totals."""

    model: str
    input_size: tuple[int, int, int]
    num_classes: int
    params: int
    macs: int
    layers: list[LayerRow]

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "input_size": list(self.input_size), "num_classes": self.num_classes,
                "params": self.params, "macs": self.macs, "layers": [asdict(r) for r in self.layers]}

    def __str__(self) -> str:
        lines = [f"{'layer':<28}{'type':<18}{'output shape':<20}{'params':>12}{'MACs':>10}"]
        lines += [f"{r.name:<28}{r.kind:<18}{str(r.output_shape):<20}{r.params:>12,}{human(r.macs):>10}" for r in self.layers]
        lines += ["", f"{self.model}: {self.params:,} parameters, {human(self.macs)} multiply-accumulates "
                      f"on a {'x'.join(map(str, self.input_size))} input"]
        return "\n".join(lines)

    __repr__ = __str__  # a notebook cell ending in summary(...) shows the table


def summary(model: str | nn.Module, input_size: tuple[int, int, int] | list[int] | None = None, *,
            num_classes: int | None = None, **options: Any) -> ModelSummary:
    """The per-layer table of ``model`` (a registered name, built with ``options``, or a module) on a
    ``(C, H, W)`` input (None: a registered model's native size). ``num_classes`` (None: 10 for the
    CIFAR nets, 1000 for the ImageNet nets) applies to a name."""
    if isinstance(model, nn.Module):
        if options or num_classes is not None:
            raise ResnetlabError("summary() of a built model takes no num_classes or model options: they are the model's")
        name = getattr(model, "model_name", type(model).__name__)
        if input_size is None:
            if not isinstance(getattr(model, "model_name", None), str):
                raise ResnetlabError("summary() of a model not built by create_model needs input_size=(C, H, W)")
            input_size = model_info(name).input_size
        built = model
        classes = getattr(getattr(model, "fc", None), "out_features", 0)
    else:
        info = model_info(model)
        classes = num_classes if num_classes is not None else (10 if info.family == "cifar" else 1000)  # 0 is refused, not 10
        input_size = input_size or info.input_size
        name = model
        built = create_model(model, num_classes=classes, in_channels=int(input_size[0]), **options)
    size = tuple(input_size)
    return ModelSummary(name, size, classes, count_parameters(built), count_macs(built, size), layer_summary(built, size))


def human(n: float) -> str:
    """1234567 -> "1.23M": a count of MACs as a table shows it."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))
