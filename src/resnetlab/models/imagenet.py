"""The paper's ImageNet networks (Table 1) and ResNeXt-50, built on torchvision's ResNet.

Subclassing torchvision keeps the state_dict keys and shapes identical, so a torchvision
weights file loads with ``strict=True``. The options reshape only what the paper or the CIFAR
variants change: the stem, where the bottleneck strides, and the shortcut type.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from resnetlab.errors import ResnetlabError
from resnetlab.models.layers import ZeroPadShortcut
from resnetlab.models.registry import register_model

STEMS = ("imagenet", "cifar")


class ImageNetResNet(ResNet):
    """torchvision's ResNet plus ``forward_features``/``forward_head`` and the paper's options."""

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: list[int],
        *,
        num_classes: int,
        in_channels: int,
        stem: str = "imagenet",
        stride_in_1x1: bool = False,
        shortcut: str = "B",
        zero_init_residual: bool = False,
        **resnet_kwargs: Any,
    ) -> None:
        _check_options(block, stem, stride_in_1x1, shortcut)
        super().__init__(block, layers, num_classes=num_classes, zero_init_residual=zero_init_residual, **resnet_kwargs)
        self.num_features = self.fc.in_features
        if stem == "cifar":
            # 32x32 inputs: a 3x3 stride-1 stem and no max-pool keep 32x32 going into layer1.
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        elif in_channels != 3:
            self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        if stem == "cifar" or in_channels != 3:
            nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        if stride_in_1x1:
            _move_stride_to_1x1(self)
        if shortcut.upper() == "A":
            _use_zero_pad_shortcuts(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) -> (N, 512*expansion, H/32, W/32) (H/8 with the CIFAR stem)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        pooled = torch.flatten(self.avgpool(features), 1)
        return pooled if pre_logits else self.fc(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _check_options(block: type, stem: str, stride_in_1x1: bool, shortcut: str) -> None:
    if stem not in STEMS:
        raise ResnetlabError(f"stem must be one of {', '.join(STEMS)}, got {stem!r}")
    if str(shortcut).upper() not in ("A", "B"):
        raise ResnetlabError(f"shortcut must be 'A' (zero-padding) or 'B' (projection), got {shortcut!r}")
    if str(shortcut).upper() == "A" and block is Bottleneck:
        raise ResnetlabError(
            "shortcut 'A' (zero-padding) is only defined for basic blocks (resnet18/34): the paper uses "
            "projections (option B) for bottleneck networks because their block inputs and outputs differ in width"
        )
    if stride_in_1x1 and block is not Bottleneck:
        raise ResnetlabError("stride_in_1x1 applies to bottleneck networks (resnet50/101/152, resnext50_32x4d) only")


def _move_stride_to_1x1(model: ResNet) -> None:
    """The paper's original bottleneck: the first 1x1 conv strides, the 3x3 does not (3.8 G MACs for ResNet-50)."""
    for module in model.modules():
        if isinstance(module, Bottleneck) and module.conv2.stride != (1, 1):
            module.conv1.stride, module.conv2.stride = module.conv2.stride, (1, 1)


def _use_zero_pad_shortcuts(model: ResNet) -> None:
    """Option A on ImageNet (paper Table 3): replace each projection with a parameter-free shortcut."""
    for module in model.modules():
        if isinstance(module, BasicBlock) and module.downsample is not None:
            conv = module.downsample[0]
            module.downsample = ZeroPadShortcut(conv.in_channels, conv.out_channels, conv.stride[0])


_IMAGENET_NETS: dict[str, tuple[type, list[int], dict[str, int]]] = {
    "resnet18": (BasicBlock, [2, 2, 2, 2], {}),
    "resnet34": (BasicBlock, [3, 4, 6, 3], {}),
    "resnet50": (Bottleneck, [3, 4, 6, 3], {}),
    "resnet101": (Bottleneck, [3, 4, 23, 3], {}),
    "resnet152": (Bottleneck, [3, 8, 36, 3], {}),
    "resnext50_32x4d": (Bottleneck, [3, 4, 6, 3], {"groups": 32, "width_per_group": 4}),
}


def _register(name: str, block: type, layers: list[int], extra: dict[str, int]) -> None:
    """The builder is ``ImageNetResNet`` with the net's block, layers and widths bound: its keyword
    options (stem, stride_in_1x1, shortcut, zero_init_residual) are the model's options."""
    depth = sum(layers) * (2 if block is BasicBlock else 3) + 2
    register_model(name, family="imagenet", depth=depth, input_size=(3, 224, 224))(partial(ImageNetResNet, block, layers, **extra))


for _name, (_block, _layers, _extra) in _IMAGENET_NETS.items():
    _register(_name, _block, _layers, _extra)
