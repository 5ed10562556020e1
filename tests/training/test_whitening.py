"""Whitened first-convolution initialisation: the filters whiten the patches they were computed from."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from resnetlab.checkpoint import load_checkpoint
from resnetlab.errors import ResnetlabError
from resnetlab.models import create_model
from resnetlab.training import train
from resnetlab.training.whitening import patch_covariance, patch_whitening_filters, whiten_first_convolution
from tests.training.conftest import tiny_config


def correlated_images(n: int = 64, size: int = 10, seed: int = 0) -> torch.Tensor:
    """Float images whose neighbouring pixels and channels are strongly correlated, like photographs."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, 1, size + 2, size + 2, generator=gen)
    smooth = nn.functional.avg_pool2d(noise, 3, stride=1)  # (n, 1, size, size)
    return torch.cat([smooth, 0.8 * smooth + 0.2 * torch.randn(n, 1, size, size, generator=gen),
                      torch.randn(n, 1, size, size, generator=gen)], dim=1)


def test_patch_covariance_in_chunks_equals_the_direct_one() -> None:
    images = correlated_images()
    patches = nn.functional.unfold(images.double(), 3).transpose(1, 2).reshape(-1, 27)
    assert torch.allclose(patch_covariance(images, 3, chunk=7), torch.cov(patches.T), atol=1e-10)


def test_filters_come_in_sign_pairs_and_whiten_the_patches() -> None:
    images = correlated_images()
    filters = patch_whitening_filters(images, kernel_size=3, out_channels=16, eps=0.0)
    assert filters.shape == (16, 3, 3, 3)
    assert torch.equal(filters[1::2], -filters[0::2])  # each direction followed by its negative
    responses = nn.functional.conv2d(images, filters[0::2])  # the 8 directions
    covariance = torch.cov(responses.transpose(0, 1).reshape(8, -1).double())
    assert torch.allclose(covariance, torch.eye(8, dtype=torch.float64), atol=1e-3)  # unit variance, uncorrelated


def test_more_filters_than_patch_dimensions_keep_their_own_initialisation() -> None:
    filters = patch_whitening_filters(correlated_images()[:, :1], kernel_size=2, out_channels=16)
    assert filters.shape == (8, 1, 2, 2)  # a 2x2 one-channel patch has 4 directions, so 4 pairs


def test_only_the_first_convolution_of_resnet20_changes() -> None:
    model = create_model("resnet20", num_classes=10)
    before = {name: p.clone() for name, p in model.state_dict().items()}
    images = torch.randint(0, 256, (40, 3, 12, 12), dtype=torch.uint8)
    assert whiten_first_convolution(model, images, mean=(0.5,) * 3, std=(0.25,) * 3) == 16
    changed = [name for name, p in model.state_dict().items() if not torch.equal(p, before[name])]
    assert changed == ["conv1.weight"]
    assert model.conv1.weight.requires_grad  # an initialisation: the layer still trains


def test_a_fresh_run_starts_from_the_whitened_filters(tmp_path: Path, bundle) -> None:
    train(tiny_config(tmp_path / "run", whiten_first_conv=True, epochs=1, lr=0.0), bundle=bundle)  # lr 0: weights stay
    assert "first convolution: 16 filters from whitened training-image patches" in (tmp_path / "run" / "train.log").read_text()
    saved = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["state_dict"]["conv1.weight"]
    expected = create_model("resnet20", num_classes=3)
    whiten_first_convolution(expected, bundle.train.images, bundle.mean, bundle.std, seed=0)
    assert torch.equal(saved, expected.conv1.weight)


def test_whitening_and_init_from_are_refused_together(tmp_path: Path) -> None:
    with pytest.raises(ResnetlabError, match="whiten_first_conv initialises a fresh model"):
        tiny_config(tmp_path / "run", whiten_first_conv=True, init_from="weights.pt")
