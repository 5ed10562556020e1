"""A run's final model on its own test split: the confusion matrix and a sample of predictions.

This is the one part of a report that needs more than the run folder's text files: the
checkpoint and the data (and, with the explain extra, the activation maps of the sample's
mistakes). It goes through the same path as ``resnetlab eval`` (checkpoint ->
``evaluation.evaluate.checkpoint_data`` and ``split_logits``: the data read as training read it,
the checkpoint's model, normalisation, layout, test-time views and precision), so the matrix
agrees with the test accuracy in summary.json. When the checkpoint or the data is missing it raises a
``ResnetlabError`` whose message the report prints in place of the figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from resnetlab.checkpoint import load_checkpoint, model_from_checkpoint
from resnetlab.data import DatasetBundle, load_dataset
from resnetlab.devices import resolve_device
from resnetlab.errors import ResnetlabError
from resnetlab.evaluation.evaluate import checkpoint_data, split_logits
from resnetlab.evaluation.explain import activation_maps, displayable, grad_cam_installed, overlay
from resnetlab.evaluation.logits import evaluation_batch_size
from resnetlab.evaluation.metrics import confusion_matrix
from resnetlab.evaluation.view_averaging import TestViews
from resnetlab.precision import evaluation_precision
from resnetlab.reports.reading import Run
from resnetlab.runs import RUN_CHECKPOINTS, RunFolder

MISTAKE_MAPS = 8  # at most one row of the prediction grid


@dataclass
class TestPredictions:
    """Everything the report shows about a model's predictions on the test split."""

    checkpoint: Path
    classes: list[str]
    confusion: torch.Tensor  # (K, K) int64, row = true class, column = predicted
    sample_images: np.ndarray  # (S, C, H, W) uint8, a seeded random sample of the test split
    sample_labels: list[int]
    sample_predictions: list[int]
    # the sample's mistakes, each overlaid with the class activation map of its predicted class
    # (uint8 M,3,H,W), when grad-cam is installed; None without it
    mistake_maps: np.ndarray | None = None

    @property
    def accuracy(self) -> float:
        return float(self.confusion.diag().sum() / max(int(self.confusion.sum()), 1))

    @property
    def count(self) -> int:
        return int(self.confusion.sum())


class DatasetCache:
    """``load_dataset`` that reads each request once per report (four runs on CIFAR-10 decode it once)
    and never downloads: a report says the data is missing instead."""

    def __init__(self) -> None:
        self._bundles: dict[tuple[Any, ...], DatasetBundle] = {}

    def __call__(self, name: str, data_dir: str | None = None, **options: Any) -> DatasetBundle:
        key = (name, data_dir, *((k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(options.items())))
        if key not in self._bundles:
            self._bundles[key] = load_dataset(name, data_dir, download=False, **options)
        return self._bundles[key]


def predict_test_split(run: Run, cache: DatasetCache, *, samples: int = 32, seed: int = 0,
                       device: str = "auto", precision: str | None = None, accept_changed_data: bool = False) -> TestPredictions:
    """Run the final checkpoint over the whole test split, in the run's precision unless ``precision``
    says otherwise; raises ResnetlabError saying what is missing, or that the run's image folder
    changed since it started (unless ``accept_changed_data``), as eval does."""
    path = run.checkpoint_file()
    if path is None:
        raise ResnetlabError(f"no checkpoint in {RunFolder(run.path).checkpoints} ({' or '.join(RUN_CHECKPOINTS)})")
    ckpt = load_checkpoint(path)
    try:
        bundle = checkpoint_data(ckpt, load=cache, record=RunFolder(run.path).read_data_record(),  # as eval reads it
                                 accept_changed_data=accept_changed_data, cannot=f"cannot report the predictions of {run.path}")
    except OSError as exc:
        raise ResnetlabError(f"the data of {(ckpt.get('dataset') or {}).get('name')} could not be read: {exc}") from None
    device = resolve_device(device)
    logits, labels = split_logits(ckpt, bundle.test, TestViews.from_checkpoint(ckpt), device=device,
                                  precision=evaluation_precision(ckpt.get("config") or {}, precision, device),
                                  batch_size=evaluation_batch_size(bundle.pipeline, (ckpt.get("config") or {}).get("batch_size"), device),
                                  progress=f"{run.name}: test split")
    predicted = logits.argmax(1)

    rows = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:samples]
    images = bundle.test.preview(rows)
    wrong = (predicted[rows] != labels[rows]).nonzero().flatten()[:MISTAKE_MAPS]
    return TestPredictions(
        checkpoint=path,
        classes=list(ckpt["classes"]),
        confusion=confusion_matrix(logits, labels, len(ckpt["classes"])),
        sample_images=images.numpy(),
        sample_labels=labels[rows].tolist(),
        sample_predictions=predicted[rows].tolist(),
        mistake_maps=mistake_maps(ckpt, images[wrong], predicted[rows][wrong].tolist(), device) if grad_cam_installed() else None,
    )


def mistake_maps(ckpt: dict[str, Any], images: torch.Tensor, predicted: list[int], device: torch.device) -> np.ndarray:
    """uint8 (M, 3, H, W): each mistaken image (uint8, as the model saw it) with the map of the class
    it was taken for (``evaluation.explain``: the library's Grad-CAM at the family's layer), in fp32."""
    if not len(images):
        return np.zeros((0, 3, *images.shape[2:]), dtype=np.uint8)
    norm = ckpt["normalization"]
    mean, std = torch.tensor(norm["mean"]).view(1, -1, 1, 1), torch.tensor(norm["std"]).view(1, -1, 1, 1)
    inputs = (images.float() / 255 - mean) / std
    model = model_from_checkpoint(ckpt).to(device).eval()
    heat = activation_maps(model, ckpt["model"]["name"], inputs, predicted)
    return np.stack([overlay(displayable(x, norm["mean"], norm["std"]), h).transpose(2, 0, 1) for x, h in zip(inputs, heat)])
