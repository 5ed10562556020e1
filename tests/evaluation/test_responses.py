"""Layer responses (Fig. 7): which layers are measured, and that each std is the population std of
that layer's BatchNorm output over every element of every batch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from resnetlab.errors import ResnetlabError
from resnetlab.evaluation.responses import ResponseMeter, is_residual, layer_responses, response_layers
from resnetlab.models import create_model


def trained_looking(model: nn.Module, seed: int = 0) -> nn.Module:
    """``model`` with BatchNorm running statistics and affine parameters away from 1/0, so that
    eval mode is not the identity it is on a fresh model."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.3)
            m.running_var.copy_(torch.rand(c, generator=gen) * 2 + 0.2)
            m.weight.data.copy_(torch.rand(c, generator=gen) + 0.2)
            m.bias.data.copy_(torch.randn(c, generator=gen) * 0.2)
    return model.eval()


@pytest.mark.parametrize("name,options,count,first,last,residual", [
    ("resnet20", {}, 19, "conv1", "layer3.2.conv2", True),  # the stem and 2 x 9 blocks: 19 3x3 layers
    ("plain20", {}, 19, "conv1", "layer3.2.conv2", False),
    ("resnet20", {"shortcut": "B"}, 19, "conv1", "layer3.2.conv2", True),  # the 1x1 projections are not 3x3 layers
    ("resnet56", {}, 55, "conv1", "layer3.8.conv2", True),
    ("resnet18", {}, 16, "layer1.0.conv1", "layer4.1.conv2", True),  # a 7x7 stem: not a 3x3 layer
    ("resnet18", {"stem": "cifar"}, 17, "conv1", "layer4.1.conv2", True),
    ("resnet50", {}, 16, "layer1.0.conv2", "layer4.2.conv2", True),  # one 3x3 per bottleneck
])
def test_response_layers_are_the_3x3_convolutions_in_forward_order(name: str, options: dict, count: int, first: str,
                                                                    last: str, residual: bool) -> None:
    with torch.device("meta"):
        model = create_model(name, **options)
    layers = response_layers(model)
    assert len(layers) == count
    assert [layer.index for layer in layers] == list(range(1, count + 1))
    assert (layers[0].conv, layers[-1].conv) == (first, last)
    assert all(layer.norm == layer.conv.replace("conv", "bn") for layer in layers)  # each conv's own BatchNorm
    assert is_residual(model) is residual


def test_one_layers_std_is_the_population_std_of_its_batchnorm_output() -> None:
    torch.manual_seed(0)
    model = trained_looking(create_model("resnet20", num_classes=10))
    images = torch.randn(12, 3, 16, 16)
    batches = [(images[:5], torch.zeros(5)), (images[5:], torch.zeros(7))]  # two batches of different sizes
    stds = layer_responses(model, batches)
    layers = response_layers(model)
    block = model.layer2[0]
    with torch.no_grad():  # the first block of stage 2: its first 3x3 conv's BN output, before the ReLU
        x = model.layer1(model.relu(model.bn1(model.conv1(images))))
        direct = block.bn1(block.conv1(x))
        stem = model.bn1(model.conv1(images))
    index = next(i for i, layer in enumerate(layers) if layer.norm == "layer2.0.bn1")
    assert index == 7  # stem, 3 blocks x 2 in stage 1, then this one
    expected = torch.std(direct.double(), correction=0).item()  # over N x C x H x W, divisor N
    assert stds[index] == pytest.approx(expected, abs=1e-6, rel=1e-6)
    assert stds[0] == pytest.approx(torch.std(stem.double(), correction=0).item(), abs=1e-6, rel=1e-6)
    assert stds[index] != pytest.approx(torch.std(direct.double(), correction=1).item(), abs=1e-9, rel=1e-9)


def test_the_residual_blocks_second_response_is_before_the_addition() -> None:
    """The hook reads bn2's output, not the block's output after the shortcut is added and ReLU'd."""
    model = trained_looking(create_model("resnet20"))
    images = torch.randn(4, 3, 8, 8)
    stds = layer_responses(model, [(images, torch.zeros(4))])
    block = model.layer1[0]
    with torch.no_grad():
        x = model.relu(model.bn1(model.conv1(images)))
        residual = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x)))))
        after = block(x)
    assert stds[2] == pytest.approx(torch.std(residual.double(), correction=0).item(), abs=1e-6)
    assert stds[2] != pytest.approx(torch.std(after.double(), correction=0).item(), abs=1e-3)


def test_hooks_are_registered_once_per_layer_and_removed_after_each_pass() -> None:
    model = trained_looking(create_model("resnet20", shortcut="B"))
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    seen: list[list[int]] = []

    def batches():
        for _ in range(3):
            seen.append([len(m._forward_hooks) for m in norms])  # while the pass runs
            yield torch.randn(2, 3, 8, 8), torch.zeros(2)

    layers = response_layers(model)
    measured = {layer.norm for layer in layers}
    expected = [1 if name in measured else 0 for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    first = layer_responses(model, batches())
    second = layer_responses(model, batches())
    assert seen == [expected] * 6  # one hook per measured BatchNorm, none on the projections' BatchNorms
    assert [len(m._forward_hooks) for m in model.modules()] == [0] * len(list(model.modules()))
    assert len(first) == len(second) == 19
    assert model.training is False


def test_the_meter_counts_every_element_of_every_batch() -> None:
    model = trained_looking(create_model("plain20"))
    layers = response_layers(model)
    with ResponseMeter(model, layers) as meter, torch.no_grad():
        model(torch.randn(3, 3, 8, 8))
        model(torch.randn(5, 3, 8, 8))
    # 8 images: 16 channels at 8x8 in stage 1, 32 at 4x4 in stage 2, 64 at 2x2 in stage 3
    assert meter.count[0] == 8 * 16 * 8 * 8 and meter.count[-1] == 8 * 64 * 2 * 2
    assert all(len(m._forward_hooks) == 0 for m in model.modules())


def test_training_mode_is_restored() -> None:
    model = create_model("resnet20").train()
    layer_responses(model, [(torch.randn(2, 3, 8, 8), torch.zeros(2))])
    assert model.training


def test_a_model_without_batchnorm_after_a_3x3_convolution_is_refused() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))
    with pytest.raises(ResnetlabError, match="has no BatchNorm after a 3x3 convolution"):
        response_layers(model)


def test_channels_last_models_give_the_same_stds() -> None:
    """GPU runs evaluate in channels_last: the sums read the same elements in another memory order."""
    model = trained_looking(create_model("resnet20"))
    images = torch.randn(6, 3, 16, 16)
    plain = layer_responses(model, [(images, torch.zeros(6))])
    model = model.to(memory_format=torch.channels_last)
    last = layer_responses(model, [(images.to(memory_format=torch.channels_last), torch.zeros(6))])
    assert last == pytest.approx(plain, rel=1e-5)
