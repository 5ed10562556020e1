"""Building blocks shared by the CIFAR and ImageNet networks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ZeroPadShortcut(nn.Module):
    """The paper's option A shortcut where the shape changes: parameter-free.

    Takes every second pixel and zero-pads the new channels, half before and half after the
    existing ones, exactly as the most used PyTorch CIFAR reproduction does, so that its
    published weights load into our models after renaming keys.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if (out_channels - in_channels) % 2:
            raise ValueError("option A needs an even number of new channels")
        self.stride = stride
        self.pad = (out_channels - in_channels) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]  # (N, C, H/s, W/s)
        return F.pad(x, (0, 0, 0, 0, self.pad, self.pad))  # (N, C + 2*pad, H/s, W/s)


def projection_shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """The paper's option B: 1x1 convolution + BatchNorm, named ``downsample.0/.1`` as torchvision."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


def init_paper_weights(model: nn.Module) -> None:
    """He et al.'s initialisation ([13] in the paper): Kaiming normal (fan_out) convs, BN 1/0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


def init_xavier_weights(model: nn.Module) -> None:
    """d2l's ``train_ch6`` initialisation: ``xavier_uniform_`` on every Conv2d and Linear weight;
    biases and BatchNorm keep what the model set."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)


# A fresh model's starting weights by the config's ``init`` name; None: the model's own (kaiming).
WEIGHT_INITS = {"kaiming": None, "xavier": init_xavier_weights}
