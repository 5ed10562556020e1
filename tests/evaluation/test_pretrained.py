"""load_pretrained: keep what fits, renew the classifier, refuse another network's weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from resnetlab.errors import ResnetlabError
from resnetlab.models import create_model
from resnetlab.pretrained import guess_model, input_filters, load_pretrained
from tests.builders import make_checkpoint


def test_torchvision_state_dict_loads_backbone_and_renews_fc(tmp_path: Path) -> None:
    torch.manual_seed(1)
    source = create_model("resnet18", num_classes=1000)  # our ImageNet nets use torchvision's exact keys
    torch.save(source.state_dict(), tmp_path / "resnet18.pth")
    torch.manual_seed(2)
    target = create_model("resnet18", num_classes=5)
    fc_before = target.fc.weight.clone()
    report = load_pretrained(target, tmp_path / "resnet18.pth")
    assert report["new"] == ["fc.weight", "fc.bias"]
    assert len(report["loaded"]) == len([k for k in source.state_dict() if "num_batches_tracked" not in k]) - 2
    assert torch.equal(target.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    assert torch.equal(target.bn1.running_var, source.bn1.running_var)
    assert torch.equal(target.fc.weight, fc_before)  # left as initialised


def test_own_checkpoint_with_same_classes_loads_everything(tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path / "c.pt", classes=["a", "b", "c"], seed=3)
    target = create_model("resnet20", num_classes=3)
    report = load_pretrained(target, ckpt)
    assert report["new"] == [] and "fc.weight" in report["loaded"]
    assert torch.equal(target.fc.weight, torch.load(ckpt, weights_only=True)["state_dict"]["fc.weight"])


@pytest.mark.parametrize("source, target", [("resnet50", "resnet20"), ("resnet34", "resnet18"), ("resnet18", "resnet34")])
def test_weights_of_another_network_are_refused(tmp_path: Path, source: str, target: str) -> None:
    with torch.device("meta"):
        state = create_model(source, num_classes=1000).state_dict()
    torch.save({k: torch.zeros(v.shape, dtype=v.dtype) for k, v in state.items()}, tmp_path / "w.pth")
    with torch.device("meta"):
        model = create_model(target, num_classes=10)
    with pytest.raises(ResnetlabError, match=f"do not fit the backbone of {target}.*look like {source} weights"):
        load_pretrained(model, tmp_path / "w.pth")


def test_guess_model_reads_architecture_and_options() -> None:
    assert guess_model(create_model("resnet32", shortcut="B", num_classes=7).state_dict()) == {
        "name": "resnet32", "num_classes": 7, "in_channels": 3, "options": {"shortcut": "B"}}
    assert guess_model(create_model("resnet18", stem="cifar", in_channels=1).state_dict())["options"] == {"stem": "cifar"}
    assert guess_model({"x": torch.zeros(1)}) is None


def test_rgb_weights_fine_tune_on_gray_images_with_the_same_response(tmp_path: Path) -> None:
    """The first convolution summed over R, G, B answers a gray image as the RGB network did."""
    torch.manual_seed(0)
    source = create_model("resnet20", num_classes=10).eval()
    torch.save(source.state_dict(), tmp_path / "rgb.pth")
    target = create_model("resnet20", num_classes=10, in_channels=1).eval()
    report = load_pretrained(target, tmp_path / "rgb.pth")
    assert report["adapted"] == ["conv1.weight"] and report["new"] == []
    assert tuple(target.conv1.weight.shape) == (16, 1, 3, 3)
    gray = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(target(gray), source(gray.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-5)


def test_other_channel_counts_repeat_the_learnt_filters_at_the_same_scale() -> None:
    weight = torch.arange(2 * 3 * 1 * 1, dtype=torch.float32).view(2, 3, 1, 1)
    five = input_filters(weight, 5)
    assert five.shape == (2, 5, 1, 1)
    assert torch.equal(five[:, :3], weight * 0.6) and torch.equal(five[:, 3:], weight[:, :2] * 0.6)
    assert torch.equal(input_filters(weight, 1), weight.sum(1, keepdim=True))


def test_weights_of_another_width_are_still_refused_after_channel_adaptation(tmp_path: Path) -> None:
    torch.save(create_model("resnet18", num_classes=10).state_dict(), tmp_path / "r18.pth")
    with pytest.raises(ResnetlabError, match="do not fit the backbone of resnet20.*look like resnet18"):
        load_pretrained(create_model("resnet20", in_channels=1), tmp_path / "r18.pth")
