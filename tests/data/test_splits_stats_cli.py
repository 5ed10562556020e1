"""Validation split, subset, statistics, the dataset registry and ``resnetlab data``."""

from __future__ import annotations

import json
import re

import pytest
import torch

from resnetlab.cli import main
from resnetlab.data import ImageSet, list_datasets, load_dataset
from resnetlab.data.splits import split_validation, take_subset
from resnetlab.data.stats import channel_stats
from resnetlab.errors import ResnetlabError
from tests.builders import make_image_folder


def numbered(n: int) -> ImageSet:
    return ImageSet(torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous(), torch.arange(n))


def test_channel_stats_match_a_float_computation() -> None:
    images = torch.randint(0, 256, (50, 3, 7, 5), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    mean, std = channel_stats(images)
    as_float = images.double().div(255).transpose(0, 1).reshape(3, -1)
    assert mean == pytest.approx(as_float.mean(1).tolist(), abs=1e-12)
    assert std == pytest.approx(as_float.std(1, unbiased=False).tolist(), abs=1e-12)


def test_validation_split_is_deterministic_disjoint_and_complete() -> None:
    data = numbered(100)
    train, val = split_validation(data, 20, seed=5)
    again_train, again_val = split_validation(data, 20, seed=5)
    assert torch.equal(val.labels, again_val.labels) and len(train) == 80 and len(val) == 20
    assert sorted(train.labels.tolist() + val.labels.tolist()) == list(range(100))
    assert not torch.equal(split_validation(data, 20, seed=6)[1].labels, val.labels)
    assert torch.equal(train.images[:, 0, 0, 0].long(), train.labels)  # images travel with their labels
    with pytest.raises(ResnetlabError) as caught:  # the command line's spelling of the options
        split_validation(data, 100, seed=0)
    assert re.search("--val-split 100", caught.value.for_command_line())


def test_subset_is_seeded_and_applied_after_the_validation_split(tmp_path) -> None:
    assert len(take_subset(numbered(100), 10, seed=0)) == 10
    assert torch.equal(take_subset(numbered(100), 10, 0).labels, take_subset(numbered(100), 10, 0).labels)
    root = make_image_folder(tmp_path / "f", per_class=10)
    full = load_dataset("folder", root, val_split=6, seed=1)
    small = load_dataset("folder", root, val_split=6, seed=1, subset=8)
    assert torch.equal(full.val.labels, small.val.labels) and len(small.train) == 8
    assert set(small.train.images[:, 0, 0, 0].tolist()) <= set(full.train.images[:, 0, 0, 0].tolist())
    assert small.mean == channel_stats(small.train.images)[0]  # statistics of what is left for training


def test_registry_and_unknown_name() -> None:
    assert list_datasets() == ["cifar10", "cifar100", "mnist", "fashion-mnist", "folder"]
    with pytest.raises(ResnetlabError, match="unknown dataset 'cifar-10'. Did you mean 'cifar10'.*Known datasets: cifar10, cifar100"):
        load_dataset("cifar-10")


def test_cli_info_json_form(tmp_path, capsys) -> None:
    root = make_image_folder(tmp_path / "f", classes=("a", "b"), per_class=5)
    assert main(["data", "info", "--dataset", "folder", "--data-dir", str(root), "--val-split", "2", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info) == {"dataset", "classes", "splits", "test_split", "per_class", "image_shape", "pipeline", "pipeline_reason",
                         "storage", "storage_reason", "mean", "std", "location", "exif_orientation", "passed_over"}
    assert info["pipeline"] == "small" and "8x8" in info["pipeline_reason"]
    assert info["dataset"] == "folder" and info["classes"] == ["a", "b"]
    assert info["splits"] == {"train": 8, "test": 10, "val": 2} and info["image_shape"] == [3, 8, 8]
    assert info["test_split"] == "test" and sum(c["train"] + c["val"] for c in info["per_class"].values()) == 10
    assert {c: n["test"] for c, n in info["per_class"].items()} == {"a": 5, "b": 5}
    assert info["exif_orientation"] == {"rule": "ignore", "tagged": 0, "checked": 20, "images": 20, "examples": []}
    assert len(info["mean"]) == 3 and info["location"] == str(root.resolve())
    assert main(["data", "info", "--dataset", "folder", "--data-dir", str(root)]) == 0
    assert "classes      2: a, b" in capsys.readouterr().out


def test_cli_stats_and_download(tmp_path, capsys) -> None:
    root = make_image_folder(tmp_path / "f", mode="L")
    assert main(["data", "stats", "--dataset", "folder", "--data-dir", str(root), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["train_images"] == 12 and len(stats["mean"]) == 1
    assert main(["data", "download", "--dataset", "folder", "--data-dir", str(root)]) == 0
    assert "ready in" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "nope"], "unknown dataset 'nope'"),
    (["--dataset", "folder", "--data-dir", "/no/such/folder"], "image folder /no/such/folder does not exist"),
    (["--dataset", "mnist", "--no-download"], "mnist files not found"),
])
def test_cli_bad_input_is_one_line_and_exit_2(argv, message, capsys) -> None:
    assert main(["data", "info", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("resnetlab: error: ") and message in err and err.count("\n") == 1 and "Traceback" not in err
