"""The paper's CIFAR-10 networks (Section 4.2) and their plain twins (Fig. 6).

A 3x3 stem with 16 filters, three stages of n basic blocks with 16/32/64 filters (stride 2 at
the start of stages 2 and 3), global average pooling and one fully connected layer: 6n+2
weighted layers. Module names follow torchvision (conv1, bn1, layer1..3, downsample, fc), so
checkpoints of the popular reproductions convert by renaming keys.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from resnetlab.errors import ResnetlabError
from resnetlab.models.layers import ZeroPadShortcut, init_paper_weights, projection_shortcut
from resnetlab.models.registry import register_model

SHORTCUTS = ("A", "B")


class CifarBasicBlock(nn.Module):
    """Two 3x3 convolutions; with a shortcut (residual) or without one (plain)."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int, shortcut: str | None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.residual = shortcut is not None
        self.downsample: nn.Module | None = None
        if self.residual and (stride != 1 or in_channels != channels):
            if shortcut == "A":
                self.downsample = ZeroPadShortcut(in_channels, channels, stride)
            else:
                self.downsample = projection_shortcut(in_channels, channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class CifarResNet(nn.Module):
    """6n+2 layers; ``shortcut=None`` gives the plain network of the same depth."""

    def __init__(
        self,
        blocks_per_stage: int,
        num_classes: int = 10,
        in_channels: int = 3,
        shortcut: str | None = "A",
        zero_init_residual: bool = False,
        widths: tuple[int, int, int] = (16, 32, 64),
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self._in = widths[0]
        self.layer1 = self._make_layer(widths[0], blocks_per_stage, 1, shortcut)
        self.layer2 = self._make_layer(widths[1], blocks_per_stage, 2, shortcut)
        self.layer3 = self._make_layer(widths[2], blocks_per_stage, 2, shortcut)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = widths[2]
        self.fc = nn.Linear(widths[2], num_classes)
        init_paper_weights(self)
        if zero_init_residual:
            # Goyal et al. 2017: each residual block starts as the identity.
            for m in self.modules():
                if isinstance(m, CifarBasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def _make_layer(self, channels: int, blocks: int, stride: int, shortcut: str | None) -> nn.Sequential:
        layers = []
        for i in range(blocks):
            layers.append(CifarBasicBlock(self._in, channels, stride if i == 0 else 1, shortcut))
            self._in = channels
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) -> (N, 64, H/4, W/4): everything before pooling."""
        x = self.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool (N, 64, h, w) -> (N, 64), then classify unless ``pre_logits``."""
        pooled = torch.flatten(self.avgpool(features), 1)
        return pooled if pre_logits else self.fc(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _cifar_resnet(
    blocks_per_stage: int,
    *,
    num_classes: int,
    in_channels: int,
    shortcut: str = "A",
    zero_init_residual: bool = False,
) -> CifarResNet:
    shortcut = str(shortcut).upper()
    if shortcut not in SHORTCUTS:
        raise ResnetlabError(f"shortcut must be 'A' (zero-padding) or 'B' (projection), got {shortcut!r}")
    return CifarResNet(blocks_per_stage, num_classes, in_channels, shortcut, zero_init_residual)


def _cifar_plain(blocks_per_stage: int, *, num_classes: int, in_channels: int) -> CifarResNet:
    return CifarResNet(blocks_per_stage, num_classes, in_channels, shortcut=None)


for _n in (3, 5, 7, 9, 18, 200):
    register_model(f"resnet{6 * _n + 2}", family="cifar", depth=6 * _n + 2, input_size=(3, 32, 32))(
        partial(_cifar_resnet, _n)
    )
for _n in (3, 5, 7, 9, 18):
    register_model(f"plain{6 * _n + 2}", family="cifar", depth=6 * _n + 2, input_size=(3, 32, 32))(
        partial(_cifar_plain, _n)
    )
