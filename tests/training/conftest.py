"""Training fixtures: a tiny learnable dataset and a fast config that trains on it in seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from resnetlab.training import TrainConfig, resolve_config
from tests.conftest import make_tiny_bundle


def tiny_config(out: Path, **overrides: Any) -> TrainConfig:
    """ResNet-20 on the tiny bundle (48 images, batch 8: 6 iterations per epoch), on the CPU."""
    values = {"out": str(out), "epochs": 3, "max_iters": None, "batch_size": 8, "lr": 0.05,
              "device": "cpu", "quiet": True, "seed": 0}
    return resolve_config("paper", overrides={**values, **overrides})


@pytest.fixture
def bundle():
    return make_tiny_bundle()

