"""A run records where its data is as an absolute path: copied elsewhere, read from anywhere, it evaluates."""

from __future__ import annotations

import shutil

import pytest
import yaml

from resnetlab.evaluation import evaluate
from resnetlab.training import train
from tests.builders import make_image_folder, read_json, tiny_train_overrides

pytestmark = pytest.mark.usefixtures("data_cache")


def test_a_copied_run_evaluates_from_another_directory(tmp_path, monkeypatch) -> None:
    work = tmp_path / "work"
    make_image_folder(work / "flowers", per_class=8)
    monkeypatch.chdir(work)
    train(**{**tiny_train_overrides("flowers"), "epochs": 1, "batch_size": 8, "out": "runs/flowers"})
    recorded = yaml.safe_load((work / "runs" / "flowers" / "config.yaml").read_text())["data_dir"]
    assert recorded == str(work / "flowers")
    moved = shutil.copytree(work / "runs" / "flowers", tmp_path / "elsewhere" / "flowers")
    monkeypatch.chdir(tmp_path / "elsewhere")
    result = evaluate(str(moved), device="cpu")
    assert result["top1"] == read_json(moved / "summary.json")["final"]["test_acc"]
