"""Training fixtures: a tiny learnable dataset and a fast config that trains on it in seconds."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from resnetlab.data import DatasetBundle
from resnetlab.precision import resolve_precision
from resnetlab.runs import RunFolder
from resnetlab.training import TrainConfig, resolve_config
from resnetlab.training.distributed import Distributed
from resnetlab.training.run import build_model
from resnetlab.training.trainer import Trainer
from tests.conftest import make_tiny_bundle


def tiny_config(out: Path, **overrides: Any) -> TrainConfig:
    """ResNet-20 on the tiny bundle (48 images, batch 8: 6 iterations per epoch), on the CPU."""
    values = {"out": str(out), "epochs": 3, "max_iters": None, "batch_size": 8, "lr": 0.05,
              "device": "cpu", "quiet": True, "seed": 0}
    return resolve_config("paper", overrides={**values, **overrides})


def make_trainer(out: Path, bundle: DatasetBundle | None = None, **overrides: Any) -> Trainer:
    """A CPU ``Trainer`` of ``tiny_config`` on the tiny bundle, its run folder ready to write."""
    bundle = bundle if bundle is not None else make_tiny_bundle()
    device = torch.device("cpu")
    config = tiny_config(out, **overrides)
    config = replace(config, precision=resolve_precision(config.precision, device))
    run = RunFolder(out)
    run.prepare(resume=False, overwrite=False)
    run.open_log(quiet=True)
    return Trainer(config, bundle, build_model(config, bundle, device), run, Distributed(), device)


@pytest.fixture
def bundle():
    return make_tiny_bundle()

