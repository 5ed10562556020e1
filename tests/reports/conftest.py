"""Fixtures for reports: run folders fabricated to the training contract, and tiny real runs.

``fake_run`` writes exactly the files ``resnetlab.training.train`` writes (config.yaml,
metrics.csv, summary.json) with made-up numbers, so report tests run in a second and do not
depend on training. ``tiny_trained_runs`` are two real runs on ``tiny_image_folder``
(tests/conftest.py), for checkpoint-based figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.builders import fake_run, one_thread, tiny_train_overrides


@pytest.fixture
def two_fake_runs(tmp_path: Path) -> list[Path]:
    return [
        fake_run(tmp_path / "runs" / "resnet20", "resnet20", params=272_474, final_test_acc=0.9125,
                 final_train_acc=0.97, train_seconds=600.0, model_options={"zero_init_residual": True}),
        fake_run(tmp_path / "runs" / "plain56", "plain56", params=855_770, final_test_acc=0.8617,
                 final_train_acc=0.88, train_seconds=1850.0),
    ]


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


