"""The report's prediction grid: with grad-cam installed, a last row shows the sample's mistakes with
the activation map of the class each was taken for; without it, the grid is as before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from resnetlab.checkpoint import load_checkpoint, model_from_checkpoint
from resnetlab.reports import predictions as report_predictions
from resnetlab.reports.predictions import DatasetCache, predict_test_split
from resnetlab.reports.reading import read_runs


def test_the_mistakes_come_with_the_librarys_maps(tiny_trained_runs: list[Path]) -> None:
    pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import show_cam_on_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    run = read_runs([tiny_trained_runs[1]])[0]  # plain20: 2 epochs make mistakes
    result = predict_test_split(run, DatasetCache(), samples=24, device="cpu")
    wrong = [i for i, (p, t) in enumerate(zip(result.sample_predictions, result.sample_labels)) if p != t]
    assert wrong, "the tiny run made no mistakes to explain"
    assert result.mistake_maps.shape == (min(len(wrong), 8), 3, 16, 16) and result.mistake_maps.dtype == np.uint8
    ckpt = load_checkpoint(run.checkpoint_file())
    model = model_from_checkpoint(ckpt).eval()
    norm = ckpt["normalization"]
    mean, std = torch.tensor(norm["mean"]).view(-1, 1, 1), torch.tensor(norm["std"]).view(-1, 1, 1)
    first = torch.from_numpy(result.sample_images[wrong[0]]).float() / 255
    with GradCAM(model=model, target_layers=[model.layer3[-1]]) as cam:
        heat = cam(input_tensor=((first - mean) / std)[None], targets=[ClassifierOutputTarget(result.sample_predictions[wrong[0]])])[0]
    expected = show_cam_on_image(first.permute(1, 2, 0).numpy(), heat, use_rgb=True)
    assert np.abs(result.mistake_maps[0].transpose(1, 2, 0).astype(int) - expected.astype(int)).max() <= 1


def test_without_grad_cam_the_grid_has_no_map_row(tiny_trained_runs: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_predictions, "grad_cam_installed", lambda: False)
    assert predict_test_split(read_runs([tiny_trained_runs[1]])[0], DatasetCache(), samples=24, device="cpu").mistake_maps is None
