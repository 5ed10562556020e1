"""A run's final model on its own test split: the confusion matrix and a sample of predictions.

This is the one part of a report that needs more than the run folder's text files: the
checkpoint and the data. It goes through the same path as ``resnetlab eval`` (checkpoint ->
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

from resnetlab.checkpoint import load_checkpoint
from resnetlab.data import DatasetBundle, load_dataset
from resnetlab.devices import resolve_device
from resnetlab.errors import ResnetlabError
from resnetlab.evaluation.evaluate import checkpoint_data, evaluation_batch_size, split_logits
from resnetlab.evaluation.metrics import confusion_matrix
from resnetlab.evaluation.view_averaging import TestViews
from resnetlab.precision import evaluation_precision
from resnetlab.reports.runs import Run
from resnetlab.runs import RUN_CHECKPOINTS, RunFolder


@dataclass
class TestPredictions:
    """Everything the report shows about a model's predictions on the test split."""

    checkpoint: Path
    classes: list[str]
    confusion: torch.Tensor  # (K, K) int64, row = true class, column = predicted
    sample_images: np.ndarray  # (S, C, H, W) uint8, a seeded random sample of the test split
    sample_labels: list[int]
    sample_predictions: list[int]

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
    path = run.checkpoint()
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
    return TestPredictions(
        checkpoint=path,
        classes=list(ckpt["classes"]),
        confusion=confusion_matrix(logits, labels, len(ckpt["classes"])),
        sample_images=bundle.test.preview(rows).numpy(),
        sample_labels=labels[rows].tolist(),
        sample_predictions=predicted[rows].tolist(),
    )
