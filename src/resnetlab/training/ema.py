"""The exponential moving average of a model's weights, updated without waiting for the GPU.

torch's ``AveragedModel.update_parameters`` asks its ``n_averaged`` counter, a device tensor,
whether this is the first update (twice per call): two host syncs every step, which stall a GPU
that a graphed step otherwise keeps busy. ``WeightAverage`` keeps the same ``AveragedModel``
(its module, its state dict, so checkpoints are unchanged) and the same arithmetic, but knows on
the host whether it has started.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class WeightAverage:
    """EMA of parameters and buffers (``use_buffers=True``): W_ema <- decay * W_ema + (1 - decay) * W,
    the first update copying W, exactly as ``AveragedModel`` with ``get_ema_multi_avg_fn`` computes it."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        self.started = False  # n_averaged > 0, known without reading the device

    @property
    def module(self) -> nn.Module:
        return self.averaged.module

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One update from ``model``'s current weights: device kernels only, no host read."""
        ours = itertools.chain(self.averaged.module.parameters(), self.averaged.module.buffers())
        theirs = itertools.chain(model.parameters(), model.buffers())
        pairs = [(mine.detach(), other.detach().to(mine.device)) for mine, other in zip(ours, theirs, strict=True)]
        if not self.started:
            for mine, other in pairs:
                mine.copy_(other)
        else:
            groups: dict[tuple[torch.device, torch.dtype], tuple[list[torch.Tensor], list[torch.Tensor]]] = defaultdict(lambda: ([], []))
            for mine, other in pairs:
                group = groups[(mine.device, mine.dtype)]
                group[0].append(mine)
                group[1].append(other)
            for (device, _), (mine_list, other_list) in groups.items():
                self.averaged.multi_avg_fn(mine_list, other_list, self.averaged.n_averaged.to(device))
        self.averaged.n_averaged += 1
        self.started = True

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.averaged.load_state_dict(state)
        self.started = bool(self.averaged.n_averaged > 0)  # one read, when a run resumes
