"""Fixtures for reports: run folders fabricated to the training contract, and tiny real runs.

``fake_run`` writes exactly the files ``resnetlab.training.train`` writes (config.yaml,
metrics.csv, summary.json) with made-up numbers, so report tests run in a second and do not
depend on training. ``tiny_image_folder`` is a small ImageFolder data set that real
``train`` calls and checkpoint-based figures can use.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from PIL import Image

from resnetlab.runs import METRICS_COLUMNS
from tests.builders import make_tiny_bundle


@contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one intra-op thread: on a shared 2-core machine, two OpenMP threads that spin-wait
    for each other made a tiny training run 15x slower (27 s instead of 1.7 s)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)



def fake_run(folder: Path, model: str, *, epochs: int = 6, iters_per_epoch: int = 100, params: int = 270_000,
             final_test_acc: float = 0.9, final_train_acc: float = 0.95, train_seconds: float = 125.0,
             recipe: str = "paper", dataset: str = "cifar10", finished: bool = True,
             model_options: dict[str, Any] | None = None) -> Path:
    """A run folder with plausible curves ending at the given accuracies, lr divided by 10 at 50% and 75%."""
    folder.mkdir(parents=True, exist_ok=True)
    command = f"resnetlab train --model {model} --epochs {epochs} --out {folder}"
    config = {"model": model, "dataset": dataset, "data_dir": None, "out": str(folder), "recipe": recipe,
              "epochs": epochs, "batch_size": 128, "lr": 0.1, "seed": 0, "model_options": model_options or {}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    rows = []
    for e in range(epochs):
        progress = (e + 1) / epochs
        lr = 0.1 * (0.1 if progress > 0.5 else 1) * (0.1 if progress > 0.75 else 1)
        train_err = (1 - final_train_acc) + (0.8 - (1 - final_train_acc)) * math.exp(-4 * progress) * (1 - progress)
        test_err = (1 - final_test_acc) + (0.8 - (1 - final_test_acc)) * math.exp(-3 * progress) * (1 - progress)
        rows.append({"epoch": e + 1, "iteration": (e + 1) * iters_per_epoch, "lr": lr,
                     "train_loss": 2.3 * train_err, "train_acc": 1 - train_err, "val_loss": "", "val_acc": "",
                     "test_loss": 2.3 * test_err, "test_acc": 1 - test_err,
                     "epoch_seconds": train_seconds / epochs, "images_per_second": 430.0})
    with (folder / "metrics.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRICS_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    if finished:
        last = rows[-1]
        summary: dict[str, Any] = {
            "model": model, "dataset": dataset, "epochs": epochs, "iterations": epochs * iters_per_epoch,
            "params": params, "world_size": 1, "train_seconds": train_seconds, "images_per_second": 430.0,
            "final": {"train_loss": last["train_loss"], "train_acc": final_train_acc,
                      "test_loss": last["test_loss"], "test_acc": final_test_acc},
            "recipe": recipe, "command": command, "classes": [f"c{i}" for i in range(10)],
        }
        (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    return folder


@pytest.fixture
def two_fake_runs(tmp_path: Path) -> list[Path]:
    return [
        fake_run(tmp_path / "runs" / "resnet20", "resnet20", params=272_474, final_test_acc=0.9125,
                 final_train_acc=0.97, train_seconds=600.0, model_options={"zero_init_residual": True}),
        fake_run(tmp_path / "runs" / "plain56", "plain56", params=855_770, final_test_acc=0.8617,
                 final_train_acc=0.88, train_seconds=1850.0),
    ]


@pytest.fixture(scope="session")
def tiny_image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ImageFolder data set (train/<class>/*.png, test/<class>/*.png): 3 learnable classes, 16x16 RGB."""
    root = tmp_path_factory.mktemp("tiny-folder")
    bundle = make_tiny_bundle(num_classes=3, per_class=24, size=16)
    for split_name, split in (("train", bundle.train), ("test", bundle.test)):
        for i, (image, label) in enumerate(zip(split.images, split.labels)):
            target = root / split_name / bundle.classes[int(label)]
            target.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(target / f"{i:04d}.png")
    return root


def tiny_train_overrides(data_dir: Path) -> dict[str, Any]:
    """A real training run of a few seconds on ``tiny_image_folder``."""
    return {"dataset": "folder", "data_dir": str(data_dir), "epochs": 2, "batch_size": 16, "device": "cpu",
            "quiet": True, "seed": 0}


@pytest.fixture(scope="session")
def tiny_trained_runs(tiny_image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two real run folders (resnet20 and plain20, 2 epochs on 16x16 images), trained once per session."""
    training = pytest.importorskip("resnetlab.training")
    if not hasattr(training, "train"):
        pytest.skip("resnetlab.training.train is not available yet")
    root = tmp_path_factory.mktemp("tiny-runs")
    folders = []
    with one_thread():
        for model in ("resnet20", "plain20"):
            overrides = {**tiny_train_overrides(tiny_image_folder), "model": model, "out": str(root / model)}
            training.train(training.resolve_config("paper", overrides=overrides))
            folders.append(root / model)
    return folders


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())





def fake_checkpoint(run: Path, data_dir: Path, model: str = "resnet20") -> Path:
    """An untrained but well-formed checkpoint (checkpoint module format) for ``tiny_image_folder``."""
    from resnetlab.checkpoint import save_checkpoint
    from resnetlab.models import create_model

    path = run / "checkpoints" / "last.pt"
    save_checkpoint({
        "model": {"name": model, "num_classes": 3, "in_channels": 3, "options": {}},
        "classes": ["class0", "class1", "class2"], "normalization": {"mean": [0.4] * 3, "std": [0.25] * 3},
        "input_size": [3, 16, 16], "dataset": {"name": "folder", "data_dir": str(data_dir)}, "config": {},
        "state_dict": create_model(model, num_classes=3).state_dict(),
    }, path)
    return path
