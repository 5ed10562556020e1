"""An unsplit folder of class folders (DIR/<class>/*), split per class by --val-split and --seed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from resnetlab.cli import main
from resnetlab.data import load_dataset
from resnetlab.data.layout import read_layout, stratified_split
from resnetlab.errors import ResnetlabError
from resnetlab.evaluation.evaluate import data_request
from tests.builders import make_image_folder

SIZES = {"daisy": 10, "rose": 5, "tulip": 3}


def unsplit(tmp_path: Path) -> Path:
    """flower_photos/<class>/*.png as downloads come: 10, 5 and 3 images, pixels encoding (class, index)."""
    root = tmp_path / "flower_photos"
    for c, (name, count) in enumerate(SIZES.items()):
        (root / name).mkdir(parents=True)
        for k in range(count):
            Image.new("RGB", (8, 8), (20 * c + k, 0, 0)).save(root / name / f"{k:03d}.png")
    return root


def pixels(split) -> list[int]:
    return split.images[:, 0, 0, 0].tolist()


def test_a_fraction_of_each_class_is_held_out_as_the_test_split(tmp_path) -> None:
    root = unsplit(tmp_path)
    bundle = load_dataset("folder", root, val_split=0.2, seed=0)
    assert bundle.classes == ["daisy", "rose", "tulip"] and bundle.val is None  # held out once: as the test split
    assert torch.bincount(bundle.train.labels).tolist() == [8, 4, 2] and torch.bincount(bundle.test.labels).tolist() == [2, 1, 1]
    assert sorted(pixels(bundle.train) + pixels(bundle.test)) == sorted(20 * c + k for c, n in enumerate(SIZES.values()) for k in range(n))
    split = bundle.extra["split"]
    assert split["per_class"] == {"daisy": {"train": 8, "val": 2}, "rose": {"train": 4, "val": 1}, "tulip": {"train": 2, "val": 1}}
    assert split["val_split"] == 0.2 and split["seed"] == 0 and split["folder"] == str(root.resolve())
    assert sorted(split["train"] + split["val"]) == sorted(f"{n}/{k:03d}.png" for n, c in SIZES.items() for k in range(c))
    assert [int(p.split("/")[1][:3]) + 20 * list(SIZES).index(p.split("/")[0]) for p in split["val"]] == pixels(bundle.test)
    assert bundle.extra["test_split"] == "val"


def test_the_split_is_a_function_of_files_seed_and_fraction(tmp_path) -> None:
    root = unsplit(tmp_path)
    first = load_dataset("folder", root, val_split=0.2, seed=3)
    again = load_dataset("folder", root, val_split=0.2, seed=3)  # as resume and eval read it again
    assert first.extra["split"]["val"] == again.extra["split"]["val"] and pixels(first.test) == pixels(again.test)
    others = {tuple(load_dataset("folder", root, val_split=0.2, seed=s).extra["split"]["val"]) for s in range(4)}
    assert len(others) > 1  # the seed chooses the photos
    # a new class leaves every other class's choice as it was
    make_image_folder(root, classes=("lily",), per_class=5, splits=("",))
    grown = load_dataset("folder", root, val_split=0.2, seed=3)
    assert [p for p in grown.extra["split"]["val"] if not p.startswith("lily/")] == first.extra["split"]["val"]


def test_a_number_of_photos_is_shared_out_in_proportion(tmp_path) -> None:
    root = unsplit(tmp_path)
    layout = read_layout(root, val_split=6, seed=0)
    assert layout.split["per_class"] == {"daisy": {"train": 7, "val": 3}, "rose": {"train": 3, "val": 2}, "tulip": {"train": 2, "val": 1}}
    assert len(layout.test) == 6 and len(layout.train) == 12
    with pytest.raises(ResnetlabError, match="--val-split 18 must be below the 18 photos"):
        read_layout(root, val_split=18)


def test_every_class_keeps_a_photo_to_train_on_and_none_held_out_is_refused(tmp_path) -> None:
    root = make_image_folder(tmp_path / "two", classes=("a", "b"), per_class=1, splits=("",))
    with pytest.raises(ResnetlabError, match="--val-split 0.9 holds out none of the 2 photos"):
        read_layout(root, val_split=0.9)
    samples = [(f"{root}/a/{k}.png", 0) for k in range(4)]
    train, held, _ = stratified_split(samples, ["a"], root, 0.99, seed=0)
    assert len(train) == 1 and len(held) == 3


def test_without_val_split_one_message_says_what_to_pass(tmp_path, capsys) -> None:
    root = unsplit(tmp_path)
    assert main(["data", "info", "--dataset", "folder", "--data-dir", str(root)]) == 2
    err = capsys.readouterr().err
    assert err == (f"resnetlab: error: image folder {root} holds class folders (daisy, rose, tulip) but no train/ and test/ (or val/): "
                   "pass --val-split FRACTION (e.g. --val-split 0.2) to hold out that fraction of each class for testing\n")


def test_data_info_shows_the_split_per_class(tmp_path, capsys) -> None:
    root = unsplit(tmp_path)
    assert main(["data", "info", "--dataset", "folder", "--data-dir", str(root), "--val-split", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "splits       train 14, val 4 (the final evaluation reads val)\n" in out
    assert "split        val held out of each class folder by --val-split 0.2, --seed 0\n" in out
    assert "per class    (train/val) daisy 8/2, rose 4/1, tulip 2/1\n" in out


def test_a_val_folder_is_called_val(tmp_path, capsys) -> None:
    root = make_image_folder(tmp_path / "v", classes=("a", "b"), per_class=3, splits=("train", "val"))
    assert main(["data", "info", "--dataset", "folder", "--data-dir", str(root), "--val-split", "2"]) == 0
    assert "splits       train 4, val 6, held_out 2 (the final evaluation reads val)\n" in capsys.readouterr().out


def test_eval_reads_an_unsplit_runs_test_split_with_its_val_split() -> None:
    ckpt = {"dataset": {"name": "folder", "data_dir": "/d"}, "config": {"val_split": 0.2, "seed": 5, "exif_orientation": "apply"},
            "input_size": [3, 8, 8]}
    request = data_request(ckpt, None, None, "test")
    assert request["val_split"] == 0.2 and request["seed"] == 5 and request["exif_orientation"] == "apply"
    assert data_request(ckpt, "cifar10", None, "test")["val_split"] == 0  # other data: nothing held out


def test_train_resume_and_eval_see_the_same_split(tmp_path, capsys) -> None:
    root = unsplit(tmp_path)
    run = tmp_path / "run"
    common = ["--model", "resnet20", "--dataset", "folder", "--data-dir", str(root), "--val-split", "0.2", "--seed", "1",
              "--batch-size", "4", "--device", "cpu", "--quiet", "--out", str(run)]
    assert main(["train", *common, "--max-iters", "2"]) == 0
    assert main(["train", *common, "--max-iters", "4", "--resume"]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--json", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    held = load_dataset("folder", root, val_split=0.2, seed=1)
    assert result["n"] == len(held.test) == 4
    assert main(["eval", str(run), "--split", "val", "--device", "cpu"]) == 2
    assert "held out its test split (an unsplit folder), not a validation split: use --split test" in capsys.readouterr().err
