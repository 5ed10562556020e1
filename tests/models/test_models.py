"""The model zoo: exact sizes, the paper's shortcuts, torchvision compatibility, any input."""

from __future__ import annotations

import pickle

import pytest
import torch
import torchvision
from torch import nn

from resnetlab.errors import ResnetlabError
from resnetlab.models import create_model, list_models, model_info
from resnetlab.models.cifar import CifarBasicBlock
from resnetlab.models.convert import from_reference_cifar
from resnetlab.models.layers import ZeroPadShortcut
from resnetlab.models.registry import CLASSIFIER, in_classifier

# The paper's Section 4.2 sizes with 10 classes and option A (0.27M ... 19.4M).
PAPER_PARAMS = {
    "resnet20": 269_722, "resnet32": 464_154, "resnet44": 658_586,
    "resnet56": 853_018, "resnet110": 1_727_962, "resnet1202": 19_421_274,
}
IMAGENET = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d"]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registry_lists_every_family() -> None:
    names = list_models()
    assert set(PAPER_PARAMS) | set(IMAGENET) | {"plain20", "plain32", "plain44", "plain56", "plain110"} == set(names)
    assert list_models("imagenet") == IMAGENET


@pytest.mark.parametrize("name,expected", PAPER_PARAMS.items())
def test_cifar_parameter_counts_are_exact(name: str, expected: int) -> None:
    with torch.device("meta"):
        assert n_params(create_model(name)) == expected


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_plain_twin_has_same_parameters_and_no_shortcut(depth: int) -> None:
    plain = create_model(f"plain{depth}")
    assert n_params(plain) == PAPER_PARAMS[f"resnet{depth}"]
    blocks = [m for m in plain.modules() if isinstance(m, CifarBasicBlock)]
    assert len(blocks) == (depth - 2) // 2
    assert all(not b.residual and b.downsample is None for b in blocks)


def test_plain_block_output_ignores_identity() -> None:
    """A residual block with zeroed convs passes x through; a plain one outputs relu(0) = 0."""
    x = torch.rand(2, 16, 8, 8)
    for shortcut, expect_identity in (("A", True), (None, False)):
        block = CifarBasicBlock(16, 16, 1, shortcut).eval()
        nn.init.zeros_(block.bn2.weight)
        out = block(x)
        assert torch.allclose(out, x) if expect_identity else torch.count_nonzero(out) == 0


def test_shortcut_a_is_parameter_free_zero_padding() -> None:
    model = create_model("resnet20", shortcut="A")
    shortcuts = [m for m in model.modules() if isinstance(m, ZeroPadShortcut)]
    assert len(shortcuts) == 2  # the starts of stages 2 and 3
    assert all(n_params(s) == 0 for s in shortcuts)
    x = torch.randn(2, 16, 8, 8)
    y = ZeroPadShortcut(16, 32, 2)(x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, 8:24], x[:, :, ::2, ::2])  # old channels in the middle
    assert torch.count_nonzero(y[:, :8]) == 0 and torch.count_nonzero(y[:, 24:]) == 0


def test_shortcut_b_adds_projections() -> None:
    model = create_model("resnet20", shortcut="B")
    projections = [n for n, _ in model.named_modules() if n.endswith("downsample")]
    assert projections == ["layer2.0.downsample", "layer3.0.downsample"]
    # 16->32 and 32->64 1x1 convs plus their BatchNorms
    assert n_params(model) - PAPER_PARAMS["resnet20"] == 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64


@pytest.mark.parametrize("name", IMAGENET)
def test_imagenet_models_match_torchvision(name: str) -> None:
    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)(weights=None).eval()
    ours = create_model(name, num_classes=1000).eval()
    ref_sd, our_sd = reference.state_dict(), ours.state_dict()
    assert list(ref_sd) == list(our_sd)
    assert all(ref_sd[k].shape == our_sd[k].shape for k in ref_sd)
    ours.load_state_dict(ref_sd, strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(ours(x), reference(x), atol=1e-5)


def test_stride_in_1x1_moves_only_the_stride() -> None:
    torchvision_style = create_model("resnet50", num_classes=1000)
    paper_style = create_model("resnet50", num_classes=1000, stride_in_1x1=True)
    block = paper_style.layer2[0]
    assert block.conv1.stride == (2, 2) and block.conv2.stride == (1, 1)
    assert torchvision_style.layer2[0].conv2.stride == (2, 2)
    paper_style.load_state_dict(torchvision_style.state_dict(), strict=True)  # same weights, same keys


def test_cifar_stem_keeps_32x32_resolution() -> None:
    model = create_model("resnet18", stem="cifar")
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, nn.Identity)
    assert model.forward_features(torch.randn(1, 3, 32, 32)).shape == (1, 512, 4, 4)


def model_sizes() -> list:
    """Every model, 1 and 3 channels, 28/32/224 px; the quick tier keeps each model at 3x32 and 1x28."""
    return [(name, c, s) if (c, s) in ((3, 32), (1, 28)) and (name != "resnet1202" or s == 32)
            else pytest.param(name, c, s, marks=pytest.mark.slow)
            for name in list_models() for c in (1, 3) for s in (28, 32, 224)]


@pytest.mark.parametrize("name,channels,size", model_sizes())
def test_output_shapes_for_any_channels_and_size(name: str, channels: int, size: int) -> None:
    with torch.device("meta"):  # shapes only: 224x224 through resnet1202 costs nothing here
        model = create_model(name, num_classes=7, in_channels=channels)
        out = model(torch.zeros(3, channels, size, size))
    assert out.shape == (3, 7)


@pytest.mark.parametrize("name", ["resnet20", "plain20", "resnet18"])
def test_real_forward_and_features(name: str) -> None:
    model = create_model(name, num_classes=5, in_channels=1).eval()
    x = torch.randn(2, 1, 28, 28)
    features = model.forward_features(x)
    assert features.ndim == 4 and features.shape[1] == model.num_features
    assert torch.allclose(model.forward_head(features), model(x))
    assert model.forward_head(features, pre_logits=True).shape == (2, model.num_features)


@pytest.mark.parametrize("name", ["resnet20", "plain56", "resnet50", "resnext50_32x4d"])
def test_models_pickle_roundtrip(name: str) -> None:
    model = create_model(name, num_classes=3).eval()
    clone = pickle.loads(pickle.dumps(model))
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), clone(x))


def test_kaiming_init_and_zero_init_residual() -> None:
    torch.manual_seed(0)
    model = create_model("resnet56")
    conv = model.layer2[3].conv1  # 32 out channels, 3x3: fan_out = 288
    assert conv.weight.std().item() == pytest.approx((2 / (32 * 9)) ** 0.5, rel=0.1)
    assert all(m.bn2.weight.abs().sum() > 0 for m in model.modules() if isinstance(m, CifarBasicBlock))
    zero = create_model("resnet56", zero_init_residual=True)
    assert all(torch.count_nonzero(m.bn2.weight) == 0 for m in zero.modules() if isinstance(m, CifarBasicBlock))


def test_reference_cifar_checkpoint_converts_by_renaming() -> None:
    ours = create_model("resnet20")
    reference = {("module.linear." + k[3:] if k.startswith("fc.") else "module." + k): v for k, v in ours.state_dict().items()}
    fresh = create_model("resnet20")
    fresh.load_state_dict(from_reference_cifar(reference), strict=True)
    assert torch.equal(fresh.fc.weight, ours.fc.weight)


def test_reference_projection_shortcuts_convert_to_downsample() -> None:
    ours = create_model("resnet20", shortcut="B")
    reference = {"module." + k.replace(".downsample.", ".shortcut."): v for k, v in ours.state_dict().items()}
    assert any(".shortcut.0.weight" in k for k in reference)
    fresh = create_model("resnet20", shortcut="B")
    fresh.load_state_dict(from_reference_cifar(reference), strict=True)
    assert torch.equal(fresh.layer2[0].downsample[0].weight, ours.layer2[0].downsample[0].weight)


def test_paper_cifar_depths_recorded() -> None:
    assert [model_info(f"resnet{d}").depth for d in (20, 32, 44, 56, 110, 1202)] == [20, 32, 44, 56, 110, 1202]
    assert model_info("resnet50").depth == 50 and model_info("resnet152").depth == 152


@pytest.mark.parametrize(
    "call,fragment",
    [
        (lambda: create_model("resnt50"), "resnet50"),
        (lambda: create_model("resnet50", shortcut="A"), "basic blocks"),
        (lambda: create_model("resnet20", num_classes=-3), "num_classes"),
        (lambda: create_model("resnet20", shortcut="C"), "shortcut"),
        (lambda: create_model("resnet20", stem="cifar"), "stem"),
        (lambda: create_model("resnet18", stride_in_1x1=True), "bottleneck"),
        (lambda: create_model("resnet18", stem="tiny"), "stem"),
    ],
)
def test_options_that_make_no_sense_are_refused(call, fragment: str) -> None:
    with pytest.raises(ResnetlabError, match=fragment):
        call()


def test_shortcut_a_on_imagenet_basic_blocks() -> None:
    model = create_model("resnet34", num_classes=1000, shortcut="A")
    assert n_params(model) < n_params(create_model("resnet34", num_classes=1000))
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


@pytest.mark.parametrize("name", list_models())
def test_every_model_names_its_classifier_fc(name: str) -> None:
    """Fine-tuning (a new classifier, a frozen backbone) and loading other weights find it by that name."""
    with torch.device("meta"):
        model = create_model(name, num_classes=7)
    classifier = [n for n, _ in model.named_parameters() if in_classifier(n)]
    assert isinstance(model.get_submodule(CLASSIFIER), nn.Linear) and classifier == ["fc.weight", "fc.bias"]
