"""A short end-to-end run on real data (Fashion-MNIST from the Debian package) beats chance."""

from __future__ import annotations

import json

import pytest

from resnetlab.cli import main
from resnetlab.runs import read_metrics


@pytest.mark.slow
def test_resnet20_learns_fashion_mnist(tmp_path, fashion_mnist_dir):
    """Through the command line: 5,000 training images at 14x14, 3 epochs (234 iterations)."""
    out = tmp_path / "run"
    code = main(["train", "--model", "resnet20", "--dataset", "fashion-mnist", "--data-dir", str(fashion_mnist_dir),
                 "--subset", "5000", "--image-size", "14", "--epochs", "3", "--batch-size", "64", "--lr", "0.1",
                 "--device", "cpu", "--quiet", "--out", str(out)])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["iterations"] == 234 and summary["dataset"] == "fashion-mnist"
    assert summary["final"]["test_acc"] > 0.6  # chance is 0.1
    assert len(read_metrics(out / "metrics.csv")) == 3
