"""An unsplit folder of class folders (DIR/<class>/*), split per class by --val-split and --seed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from resnetlab.cli import main
from resnetlab.data import load_dataset
from resnetlab.data.layout import PERMUTATION, photo_draw, read_layout, stratified_split
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


def drawn_below(root: Path, fraction: float, seed: int) -> list[str]:
    """The photos the name-hash rule holds out: those whose own draw is below the fraction."""
    names = (p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    return sorted(name for name in names if photo_draw(name, seed) < fraction)


def test_each_photo_is_held_out_by_its_own_draw(tmp_path) -> None:
    root = unsplit(tmp_path)
    bundle = load_dataset("folder", root, val_split=0.4, seed=0)
    split = bundle.extra["split"]
    assert split["rule"] == "name-hash" and sorted(split["val"]) == drawn_below(root, 0.4, 0)
    assert len(bundle.test) == len(split["val"]) and 0 < len(split["val"]) < 18
    assert {n: c["train"] + c["val"] for n, c in split["per_class"].items()} == SIZES


def test_adding_a_photo_moves_no_other_photo(tmp_path) -> None:
    """The re-deal the permutation rule made (3 of 4 held-out photos became training photos) cannot happen."""
    root = unsplit(tmp_path)
    before = load_dataset("folder", root, val_split=0.25, seed=7).extra["split"]
    Image.new("RGB", (8, 8), (99, 0, 0)).save(root / "rose" / "new.png")
    after = load_dataset("folder", root, val_split=0.25, seed=7).extra["split"]
    assert [p for p in after["val"] if p != "rose/new.png"] == before["val"]
    assert [p for p in after["train"] if p != "rose/new.png"] == before["train"]


def test_a_fraction_of_each_class_is_held_out_as_the_test_split(tmp_path) -> None:
    """The permutation rule of older runs, which resume and eval of those runs still read."""
    root = unsplit(tmp_path)
    bundle = load_dataset("folder", root, val_split=0.2, seed=0, split_rule=PERMUTATION)
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
    first = load_dataset("folder", root, val_split=0.3, seed=3)
    again = load_dataset("folder", root, val_split=0.3, seed=3)  # as resume and eval read it again
    assert first.extra["split"]["val"] == again.extra["split"]["val"] and pixels(first.test) == pixels(again.test)
    others = {tuple(load_dataset("folder", root, val_split=0.3, seed=s).extra["split"]["val"]) for s in range(4)}
    assert len(others) > 1  # the seed chooses the photos
    # a new class leaves every other class's choice as it was
    make_image_folder(root, classes=("lily",), per_class=5, splits=("",))
    grown = load_dataset("folder", root, val_split=0.3, seed=3)
    assert [p for p in grown.extra["split"]["val"] if not p.startswith("lily/")] == first.extra["split"]["val"]


def test_a_number_of_photos_is_shared_out_in_proportion(tmp_path) -> None:
    root = unsplit(tmp_path)
    layout = read_layout(root, val_split=6, seed=0, split_rule=PERMUTATION)
    assert layout.split["per_class"] == {"daisy": {"train": 7, "val": 3}, "rose": {"train": 3, "val": 2}, "tulip": {"train": 2, "val": 1}}
    assert len(layout.test) == 6 and len(layout.train) == 12
    with pytest.raises(ResnetlabError) as caught:  # the command line's spelling of the options
        read_layout(root, val_split=18)
    assert re.search("--val-split 18 must be below the 18 photos", caught.value.for_command_line())


def test_every_class_keeps_a_photo_to_train_on_and_none_held_out_is_refused(tmp_path) -> None:
    root = make_image_folder(tmp_path / "two", classes=("a", "b"), per_class=1, splits=("",))
    with pytest.raises(ResnetlabError) as caught:  # the command line's spelling of the options
        read_layout(root, val_split=0.9)
    assert re.search("--val-split 0.9 holds out none of the 2 photos", caught.value.for_command_line())
    samples = [(f"{root}/a/{k}.png", 0) for k in range(4)]
    for rule in ("name-hash", PERMUTATION):
        train, held, _ = stratified_split(samples, ["a"], root, 0.99, seed=0, split_rule=rule)
        assert len(train) == 1 and len(held) == 3


def test_without_val_split_one_message_says_what_to_pass(tmp_path, capsys) -> None:
    root = unsplit(tmp_path)
    assert main(["data", "info", "--dataset", "folder", "--data-dir", str(root)]) == 2
    err = capsys.readouterr().err
    assert err == (f"resnetlab: error: image folder {root} holds class folders (daisy, rose, tulip) but no train/ and test/ (or val/): "
                   "pass --val-split FRACTION (e.g. --val-split 0.2) to hold out that fraction of each class for testing\n")


def test_data_info_shows_the_split_per_class(tmp_path, capsys) -> None:
    root = unsplit(tmp_path)
    assert main(["data", "info", "--dataset", "folder", "--data-dir", str(root), "--val-split", "0.4"]) == 0
    out = capsys.readouterr().out
    held = drawn_below(root, 0.4, 0)
    per_class = ", ".join(f"{n} {c - sum(p.startswith(n + '/') for p in held)}/{sum(p.startswith(n + '/') for p in held)}"
                          for n, c in SIZES.items())
    assert f"splits       train {18 - len(held)}, val {len(held)} (the final evaluation reads val)\n" in out
    assert "split        val held out of each class folder by --val-split 0.4, --seed 0\n" in out
    assert f"per class    (train/val) {per_class}\n" in out


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
    assert result["n"] == len(held.test) == len(held.extra["split"]["val"]) > 0
    assert main(["eval", str(run), "--split", "val", "--device", "cpu"]) == 2
    assert "held out its test split (an unsplit folder), not a validation split: use --split test" in capsys.readouterr().err


def test_a_run_split_by_the_older_permutation_resumes_and_evaluates_with_it(tmp_path, capsys) -> None:
    """data.json of a run that started before the name-hash rule has no "rule" (nor "fingerprint_rule"):
    resume and eval read its folder with the permutation it was trained with, not today's draw."""
    from resnetlab.data.fingerprint import LEGACY_RULE, folder_fingerprint

    root = unsplit(tmp_path)
    run = tmp_path / "run"
    common = ["--model", "resnet20", "--dataset", "folder", "--data-dir", str(root), "--val-split", "0.2", "--seed", "1",
              "--batch-size", "4", "--device", "cpu", "--quiet", "--out", str(run)]
    assert main(["train", *common, "--max-iters", "2"]) == 0
    older = load_dataset("folder", root, val_split=0.2, seed=1, split_rule=PERMUTATION).extra["split"]
    older.pop("rule")
    (run / "data.json").write_text(json.dumps({"data_dir": str(root), "fingerprint": folder_fingerprint(root, LEGACY_RULE),
                                               "split": older}))
    assert len(older["val"]) == 4 != len(load_dataset("folder", root, val_split=0.2, seed=1).extra["split"]["val"])
    assert main(["train", *common, "--max-iters", "4", "--resume"]) == 0  # no "changed data": compared by its own rule
    capsys.readouterr()
    assert main(["eval", str(run), "--json", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 4
