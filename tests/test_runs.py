"""runs.py, the run folder contract: files, summary keys, checkpoints, refusing an existing run, NaN stop,
and the one log of a run."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
import yaml

from resnetlab.checkpoint import load_checkpoint, model_from_checkpoint
from resnetlab.errors import ResnetlabError
from resnetlab.runs import METRICS_COLUMNS, PACKAGE_LOG, RunFolder, read_metrics
from resnetlab.training import train
from tests.builders import make_tiny_bundle, poison_loss, tiny_config

SUMMARY_KEYS = {"model", "dataset", "epochs", "iterations", "params", "world_size", "train_seconds",
                "images_per_second", "final", "classes", "recipe", "command"}


def test_run_folder_contract(tmp_path, bundle):
    out = tmp_path / "run"
    summary = train(tiny_config(out, epochs=2), bundle=bundle)
    for name in ("config.yaml", "metrics.csv", "summary.json", "class_indices.json", "train.log",
                 "checkpoints/last.pt", "weights.pth"):
        assert (out / name).is_file(), name
    assert not (out / "checkpoints" / "best.pt").exists()  # no validation split, no best epoch: not a copy of last.pt
    assert json.loads((out / "summary.json").read_text()) == summary
    assert SUMMARY_KEYS <= set(summary) and "best" not in summary
    assert (summary["epochs"], summary["iterations"], summary["world_size"]) == (2, 12, 1)
    assert set(summary["final"]) == {"train_loss", "train_acc", "test_loss", "test_acc"}
    rows = read_metrics(out / "metrics.csv")
    assert tuple(rows[0]) == METRICS_COLUMNS and len(rows) == 2
    assert rows[0]["val_acc"] == "" and 0 <= float(rows[-1]["test_acc"]) <= 1
    assert float(rows[-1]["test_acc"]) == summary["final"]["test_acc"]
    assert yaml.safe_load((out / "config.yaml").read_text())["batch_size"] == 8
    assert json.loads((out / "class_indices.json").read_text()) == {"0": "class0", "1": "class1", "2": "class2"}


def test_checkpoints_are_self_describing_and_weights_only(tmp_path, bundle):
    out = tmp_path / "run"
    train(tiny_config(out, epochs=1), bundle=bundle)
    raw = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert raw["model"] == {"name": "resnet20", "num_classes": 3, "in_channels": 3, "options": {}}
    assert raw["classes"] == bundle.classes and raw["input_size"] == [3, 8, 8]
    assert raw["config"]["batch_size"] == 8 and (raw["epoch"], raw["batch"], raw["iteration"]) == (1, 0, 6)
    assert {"optimizer", "scheduler", "rng", "metrics", "normalization"} <= set(raw)
    model = model_from_checkpoint(load_checkpoint(out))
    assert torch.equal(model.state_dict()["fc.weight"], raw["state_dict"]["fc.weight"])


def test_validation_split_chooses_best(tmp_path):
    data = make_tiny_bundle()
    data.val = make_tiny_bundle(seed=1).test
    summary = train(tiny_config(tmp_path / "run", epochs=2), bundle=data)
    assert summary["best"]["epoch"] in (1, 2) and "val_acc" in summary["final"]
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=True)
    assert best["epoch"] == summary["best"]["epoch"]


def test_refuses_a_folder_holding_a_run(tmp_path, bundle):
    out = tmp_path / "run"
    train(tiny_config(out, epochs=1), bundle=bundle)
    with pytest.raises(ResnetlabError, match="already holds a run"):
        train(tiny_config(out, epochs=1), bundle=bundle)
    with pytest.raises(ResnetlabError, match="cannot change lr"):
        train(tiny_config(out, epochs=1, lr=0.5), bundle=bundle, resume=True)
    assert train(tiny_config(out, epochs=1, seed=3), bundle=bundle, overwrite=True)["iterations"] == 6
    assert yaml.safe_load((out / "config.yaml").read_text())["seed"] == 3


def test_a_run_that_failed_before_training_leaves_no_run_behind(tmp_path, bundle, monkeypatch):
    """A wrong --data-dir fails after the folder is prepared; the corrected command just runs."""
    def no_data(config, *rule):
        raise ResnetlabError("image folder /nowhere does not exist")

    monkeypatch.setattr("resnetlab.training.run.load_data", no_data)
    out = tmp_path / "run"
    with pytest.raises(ResnetlabError, match="/nowhere"):
        train(tiny_config(out, epochs=1))
    assert (out / "checkpoints").is_dir() and not any((out / "checkpoints").iterdir())
    assert train(tiny_config(out, epochs=1), bundle=bundle)["iterations"] == 6


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, bundle, monkeypatch):
    """An inf injected into the loss at iteration 9 (epoch 2): a clear error, last.pt of epoch 1."""
    poison_loss(monkeypatch, at_call=9)
    out = tmp_path / "run"
    with pytest.raises(ResnetlabError, match=r"loss became (inf|nan) at iteration 9.*lower lr"):
        train(tiny_config(out), bundle=bundle)
    last = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert last["iteration"] == 6 and not (out / "summary.json").exists()


def test_huge_learning_rate_stops(tmp_path, bundle):
    with pytest.raises(ResnetlabError, match="loss became"):
        train(tiny_config(tmp_path / "run", lr=1e10, epochs=3), bundle=bundle)


def test_translated_views_are_averaged_in_the_final_evaluation_only(tmp_path, bundle):
    out = tmp_path / "run"
    summary = train(tiny_config(out, epochs=2, test_time_flip=True, test_time_shift=1), bundle=bundle)
    rows = read_metrics(out / "metrics.csv")
    assert [int(r["test_views"]) for r in rows] == [2, 18]  # image + mirror, then 9 positions x 2
    assert all(float(r["eval_seconds"]) > 0 for r in rows)
    assert float(rows[-1]["test_acc"]) == summary["final"]["test_acc"]
    # every checkpoint records the final evaluation's views, in plain types, for eval and predict
    for name in ("last.pt",):
        saved = torch.load(out / "checkpoints" / name, weights_only=True)["test_views"]
        assert saved == {"flip": True, "shift": 1, "ten_crop": False}


def test_every_module_logs_into_train_log_while_the_run_is_open(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (PACKAGE_LOG.level, PACKAGE_LOG.propagate, list(PACKAGE_LOG.handlers))
    run = RunFolder(tmp_path / "run")
    run.prepare(resume=False, overwrite=False)
    run.open_log(quiet=True)
    run.log.info("the run's own line")
    logging.getLogger("resnetlab.data.folder").warning("skipped 1 unreadable image(s) in %s: %s", "train", "cats/broken.png")
    logging.getLogger("resnetlab.data.folder").info("a data detail")
    run.close()
    logging.getLogger("resnetlab.data.folder").warning("after the run")
    lines = [line.split(" ", 2)[2] for line in (tmp_path / "run" / "train.log").read_text().splitlines()]
    assert lines == ["the run's own line", "skipped 1 unreadable image(s) in train: cats/broken.png", "a data detail"]
    assert capsys.readouterr().out == "skipped 1 unreadable image(s) in train: cats/broken.png\n"  # quiet: warnings, once
    assert (PACKAGE_LOG.level, PACKAGE_LOG.propagate, PACKAGE_LOG.handlers) == before


def test_a_process_that_does_not_write_adds_no_handler(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run", writer=False)
    run.open_log(quiet=False)
    assert PACKAGE_LOG.handlers == [] and not (tmp_path / "run" / "train.log").exists()
    run.close()


def test_overwrite_replaces_the_eval_files_of_the_old_run_and_never_a_users_config(tmp_path, bundle):
    from resnetlab.runs import holds_run

    out = tmp_path / "run"
    train(tiny_config(out, epochs=1), bundle=bundle)
    for name in ("eval-test-confusion.csv", "eval-test-confusion.png", "eval-val-mistakes.png"):
        (out / name).write_text("the old model's evaluation")
    (out / "my-notes.txt").write_text("mine")
    train(tiny_config(out, epochs=1, seed=3), bundle=bundle, overwrite=True)
    assert not list(out.glob("eval-*")) and (out / "my-notes.txt").read_text() == "mine"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.yaml").write_text("lr: 0.5  # hand-written\n")
    assert not holds_run(mine)  # a config.yaml alone is no run: --overwrite never replaces it
    with pytest.raises(ResnetlabError, match="is not a run folder \\(its config.yaml is no run's"):
        train(tiny_config(mine, epochs=1), bundle=bundle, overwrite=True)
    assert (mine / "config.yaml").read_text() == "lr: 0.5  # hand-written\n"
