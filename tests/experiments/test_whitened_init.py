"""Whitened first-convolution starting weights: the filters whiten the patches they were computed
from, and ``resnetlab train --init-from`` starts a run from the checkpoint the script writes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from resnetlab.checkpoint import load_checkpoint
from resnetlab.cli import main as resnetlab
from resnetlab.errors import ResnetlabError
from resnetlab.models import create_model
from resnetlab.training import train
from tests.builders import experiment, tiny_config

whitened_init = experiment("whitened_init")


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
    assert torch.allclose(whitened_init.patch_covariance(images, 3, chunk=7), torch.cov(patches.T), atol=1e-10)


def test_filters_come_in_sign_pairs_and_whiten_the_patches() -> None:
    images = correlated_images()
    filters = whitened_init.patch_whitening_filters(images, kernel_size=3, out_channels=16, eps=0.0)
    assert filters.shape == (16, 3, 3, 3)
    assert torch.equal(filters[1::2], -filters[0::2])  # each direction followed by its negative
    responses = nn.functional.conv2d(images, filters[0::2])  # the 8 directions
    covariance = torch.cov(responses.transpose(0, 1).reshape(8, -1).double())
    assert torch.allclose(covariance, torch.eye(8, dtype=torch.float64), atol=1e-3)  # unit variance, uncorrelated


def test_more_filters_than_patch_dimensions_keep_their_own_initialisation() -> None:
    filters = whitened_init.patch_whitening_filters(correlated_images()[:, :1], kernel_size=2, out_channels=16)
    assert filters.shape == (8, 1, 2, 2)  # a 2x2 one-channel patch has 4 directions, so 4 pairs


def test_only_the_first_convolution_of_resnet20_changes() -> None:
    model = create_model("resnet20", num_classes=10)
    before = {name: p.clone() for name, p in model.state_dict().items()}
    images = torch.randint(0, 256, (40, 3, 12, 12), dtype=torch.uint8)
    assert whitened_init.whiten_first_convolution(model, images, mean=(0.5,) * 3, std=(0.25,) * 3) == 16
    changed = [name for name, p in model.state_dict().items() if not torch.equal(p, before[name])]
    assert changed == ["conv1.weight"]
    assert model.conv1.weight.requires_grad  # an initialisation: the layer still trains


def test_a_run_from_the_saved_weights_starts_as_a_fresh_run_but_for_the_first_convolution(tmp_path: Path, tiny_bundle) -> None:
    config = tiny_config(tmp_path / "run", epochs=1, lr=0.0)  # lr 0: the weights stay as they start
    assert whitened_init.save_whitened(config, tiny_bundle, tmp_path / "whitened.pt") == 16
    train(config, bundle=tiny_bundle)
    started = train(tiny_config(tmp_path / "whitened-run", epochs=1, lr=0.0, init_from=str(tmp_path / "whitened.pt")), bundle=tiny_bundle)
    assert started["pretrained"]["new"] == []
    fresh_weights, weights = (load_checkpoint(tmp_path / run / "checkpoints" / "last.pt")["state_dict"] for run in ("run", "whitened-run"))
    expected = create_model("resnet20", num_classes=3)
    whitened_init.whiten_first_convolution(expected, tiny_bundle.train.images, tiny_bundle.mean, tiny_bundle.std, seed=0)
    assert torch.equal(weights["conv1.weight"], expected.conv1.weight)
    parameters = [name for name, _ in expected.named_parameters() if name != "conv1.weight"]
    assert all(torch.equal(weights[name], fresh_weights[name]) for name in parameters)


def write_small_images(root: Path) -> Path:
    """Two classes of 8x8 noise PNGs (dark and bright), 8 training and 4 test images each."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("test", 4)):
        for label, name in enumerate(("dark", "bright")):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 60, (8, 8, 3)) + 150 * label
                Image.fromarray(pixels.astype(np.uint8)).save(root / split / name / f"{i}.png")
    return root


def test_the_documented_commands_whiten_then_train_from_the_weights(tmp_path: Path, capsys) -> None:
    flags = ["--model", "resnet20", "--dataset", "folder", "--data-dir", str(write_small_images(tmp_path / "data")),
             "--batch-size", "4", "--epochs", "1", "--lr", "0", "--device", "cpu", "--quiet"]
    assert whitened_init.main([*flags, "--save", str(tmp_path / "whitened.pt")]) == 0
    assert "16 first-convolution filters from whitened training-image patches" in capsys.readouterr().out
    assert resnetlab(["train", *flags, "--init-from", str(tmp_path / "whitened.pt"), "--out", str(tmp_path / "run")]) == 0
    saved = load_checkpoint(tmp_path / "whitened.pt")["state_dict"]["conv1.weight"]
    trained = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert torch.equal(trained["state_dict"]["conv1.weight"], saved) and trained["config"]["normalization"] == "dataset"


def test_photo_folders_are_refused(tmp_path: Path, tiny_bundle) -> None:
    with pytest.raises(ResnetlabError, match="needs small images of one size"):
        whitened_init.whitened_model(tiny_config(tmp_path / "run"), replace(tiny_bundle, pipeline="photos"))
