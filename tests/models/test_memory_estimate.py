"""What a model's layers need for an input, estimated before anything is allocated, and the
smallest image each model takes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import resnetlab.memory as memory_module
from resnetlab.errors import ResnetlabError
from resnetlab.memory import check_image_size
from resnetlab.models import create_model, list_models, model_info
from resnetlab.models.complexity import (
    activation_bytes,
    check_activation_memory,
    check_min_image_size,
    memory_needed,
    min_image_size,
)

GIB = 2**30


def test_activation_bytes_count_each_output_once() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(100, 7))
    with torch.device("meta"):
        model = model.to("meta")
    # conv: 2 x 4 x 5 x 5 floats; the in-place ReLU and Flatten's view add nothing; linear: 2 x 7
    assert activation_bytes(model, (2, 4 - 1, 5, 5)) == (2 * 4 * 5 * 5 + 2 * 7) * 4


def test_the_estimate_grows_with_the_batch_and_training_needs_more() -> None:
    one = memory_needed("resnet18", None, (3, 224, 224), 1, training=False)
    eight = memory_needed("resnet18", None, (3, 224, 224), 8, training=False)
    weights = sum(p.numel() for p in create_model("resnet18", num_classes=10).parameters()) * 4
    assert eight - weights == pytest.approx(8 * (one - weights), rel=1e-6)  # activations scale with the batch, weights do not
    assert memory_needed("resnet18", None, (3, 224, 224), 8, training=True) > 2 * eight


def test_a_huge_image_passes_the_input_check_but_not_the_layers(monkeypatch: pytest.MonkeyPatch) -> None:
    """ResNet-18 at 4000 pixels, 128 per batch: the input batch (23 GiB) fits a 64 GiB machine, the
    first convolution's output alone (128 x 64 x 2000 x 2000 floats, 122 GiB) does not."""
    monkeypatch.setattr(memory_module, "machine_memory", lambda: 64 * GIB)
    check_image_size((3, 4000, 4000), 128, "--image-size 4000", "lower it")
    with pytest.raises(ResnetlabError, match=r"^--image-size 4000 \(a training step of resnet18 on 128 x 3x4000x4000\) needs "
                                             r"\d+\.\d GiB of memory, more than the 64.0 GiB this machine has: lower it$") as caught:
        check_activation_memory("resnet18", None, (3, 4000, 4000), 128, "cpu", "--image-size 4000", "lower it", training=True)
    assert float(str(caught.value).split(" needs ")[1].split(" GiB")[0]) > 122
    check_activation_memory("resnet18", None, (3, 224, 224), 8, "cpu", "--image-size 224", "lower it", training=True)


def test_on_a_gpu_the_estimate_is_checked_against_its_free_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory_module, "machine_memory", lambda: 1024 * GIB)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2 * GIB, 80 * GIB))
    with pytest.raises(ResnetlabError, match=r"needs \d+\.\d GiB of memory, more than the 2.0 GiB free on cuda:0: lower --batch-size$"):
        check_activation_memory("resnet50", None, (3, 224, 224), 256, torch.device("cuda", 0), "a batch", "lower --batch-size")


@pytest.mark.parametrize("name", [n for n in list_models() if n != "resnet1202"])
def test_the_smallest_image_is_what_the_layers_shrink_it_by(name: str) -> None:
    smallest = min_image_size(name)
    assert smallest == (4 if model_info(name).family == "cifar" else 32)
    with torch.device("meta"):
        model = create_model(name)
        assert model.forward_features(torch.empty(2, 3, smallest, smallest)).shape[-2:] == (1, 1)  # 2: training BatchNorm


def test_the_cifar_stem_shrinks_an_imagenet_net_less() -> None:
    assert min_image_size("resnet18", {"stem": "cifar"}) == 8


def test_a_size_below_the_smallest_is_refused_naming_it() -> None:
    check_min_image_size("resnet18", 32, "--image-size 32")
    with pytest.raises(ResnetlabError, match="^--image-size 1 is below the smallest image resnet18 takes, 32 pixels .*: use 32 or more$"):
        check_min_image_size("resnet18", 1, "--image-size 1")
    with pytest.raises(ResnetlabError, match="the smallest image resnet20 takes, 4 pixels"):
        check_min_image_size("resnet20", 3, "--image-size 3")
