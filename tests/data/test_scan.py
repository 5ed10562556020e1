"""Walking class folders: every image read once, under the class folder it lives in; all else named."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from PIL import Image

from resnetlab.cli import main
from resnetlab.data import load_dataset
from resnetlab.data.scan import listed, scan_classes
from resnetlab.errors import ResnetlabError
from tests.builders import make_image_folder

CLASSES = ("daisy", "rose", "tulip")


def three_classes(tmp_path: Path) -> Path:
    """3 classes x 6 images in train/ and in val/: 36 images."""
    return make_image_folder(tmp_path / "flowers", classes=CLASSES, per_class=6, splits=("train", "val"))


def test_links_back_to_parents_are_not_entered_and_every_entry_is_named(tmp_path, caplog) -> None:
    root = three_classes(tmp_path)
    os.symlink("..", root / "train" / "daisy" / "loop")  # train/, holding every class
    os.symlink("../../train", root / "train" / "rose" / "up")
    (tmp_path / "elsewhere").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "elsewhere" / "stray.png")
    os.symlink(tmp_path / "elsewhere", root / "train" / "tulip" / "everything")  # a folder outside the class folder
    os.symlink("../rose/000.png", root / "train" / "daisy" / "borrowed.png")  # a rose under daisy's label
    os.symlink("000.png", root / "train" / "tulip" / "again.png")  # the same tulip twice
    os.symlink("../../val/daisy/000.png", root / "train" / "daisy" / "leaked.png")  # a test image in training
    os.symlink("missing.png", root / "train" / "rose" / "dangling.png")
    with caplog.at_level(logging.WARNING, logger="resnetlab.data"):
        bundle = load_dataset("folder", root)
    assert len(bundle.train) + len(bundle.test) == 36
    assert bundle.train.labels.tolist() == [0] * 6 + [1] * 6 + [2] * 6
    assert bundle.train.images[:, 0, 0, 0].tolist() == [20 * c + k for c in range(3) for k in range(6)]  # each once, its own label
    passed = bundle.extra["passed_over"]
    assert [p.split(" (")[0] for p in passed] == [str(root / "train" / p) for p in (  # each folder's links to folders, then its files
        "daisy/loop", "daisy/borrowed.png", "daisy/leaked.png", "rose/up", "rose/dangling.png", "tulip/everything", "tulip/again.png")]
    assert passed[0].endswith(f"(a link back to {root / 'train'}, a folder above it: a loop)") and "a loop" in passed[3]
    assert passed[1].endswith(f"(a link to {root}/train/rose/000.png: read in its own class folder {root}/train/rose)")
    assert passed[2].endswith(f"(a link to {root}/val/daisy/000.png: read in its own class folder {root}/val/daisy)")
    assert passed[4].endswith("(a broken link)")
    assert passed[5].endswith(f"(a link to the folder {tmp_path}/elsewhere, outside its class folder)")
    assert passed[6].endswith(f"(a link to {root}/train/tulip/000.png, read as itself)")
    warning = next(r.getMessage() for r in caplog.records if "passed over" in r.getMessage())
    assert warning.startswith(f"passed over 7 entries in {root / 'train'}: ") and all(p in warning for p in passed)  # all 7 named


def test_files_that_are_not_images_and_special_files_are_named(tmp_path) -> None:
    root = three_classes(tmp_path)
    (root / "train" / "rose" / "notes.txt").write_text("not a photo")
    (root / "val" / "tulip" / "imageNotFound.gif").write_bytes(b"GIF89a")
    os.mkfifo(root / "train" / "daisy" / "pipe.png")  # would hang a decoder
    (root / "train" / ".DS_Store").write_bytes(b"\0")  # hidden: left out without a word, as hidden folders
    (root / "train" / "rose" / "._000.png").write_bytes(b"\0")
    bundle = load_dataset("folder", root)
    assert len(bundle.train) == 18 and len(bundle.test) == 18
    assert bundle.extra["passed_over"] == [
        f"{root}/train/daisy/pipe.png (a FIFO, not a regular file)",
        f"{root}/train/rose/notes.txt (not an image: no image extension)",
        f"{root}/val/tulip/imageNotFound.gif (not an image: no image extension)",
    ]


def test_a_folder_of_links_into_a_photo_store_is_read_once(tmp_path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    root = tmp_path / "links"
    for split in ("train", "test"):
        for c, name in enumerate(("a", "b")):
            (root / split / name).mkdir(parents=True)
            for k in range(3):
                Image.new("RGB", (8, 8), (50 * c + k, 0, 0)).save(store / f"{split}-{name}-{k}.png")
                os.symlink(store / f"{split}-{name}-{k}.png", root / split / name / f"{k}.png")
    os.symlink(store / "train-a-0.png", root / "train" / "b" / "dup.png")  # the same stored photo under a second class
    bundle = load_dataset("folder", root)
    assert bundle.train.images[:, 0, 0, 0].tolist() == [0, 1, 2, 50, 51, 52]
    assert bundle.extra["passed_over"] == [f"{root}/train/b/dup.png ({store}/train-a-0.png again: read once)"]


def test_messages_name_the_first_ten_and_count_the_rest() -> None:
    entries = [f"f{i}.txt (why)" for i in range(13)]
    assert listed(entries[:2]) == "f0.txt (why); f1.txt (why)"
    assert listed(entries) == "; ".join(entries[:10]) + "; and 3 more"


def test_nested_folders_are_read_and_class_index_is_position(tmp_path) -> None:
    (tmp_path / "x" / "deep" / "deeper").mkdir(parents=True)
    (tmp_path / "y").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "x" / "deep" / "deeper" / "1.png")
    Image.new("L", (4, 4)).save(tmp_path / "y" / "2.png")
    scan = scan_classes([tmp_path / "x", tmp_path / "y"])
    assert scan.samples == [(str(tmp_path / "x" / "deep" / "deeper" / "1.png"), 0), (str(tmp_path / "y" / "2.png"), 1)]
    assert scan.passed == [] and scan.empty == []


def test_data_info_names_what_was_passed_over(tmp_path, capsys) -> None:
    root = three_classes(tmp_path)
    os.symlink("..", root / "train" / "daisy" / "loop")
    assert main(["data", "info", "--dataset", "folder", "--data-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"passed over  1 entry: {root}/train/daisy/loop (a link back to {root}/train, a folder above it: a loop)" in out


@pytest.mark.parametrize("layout", ["split", "unsplit"])
def test_a_class_with_only_passed_over_entries_is_an_empty_class(tmp_path, layout) -> None:
    root = three_classes(tmp_path) if layout == "split" else make_image_folder(tmp_path / "u", classes=CLASSES, splits=("",))
    weeds = (root / "train" / "weeds") if layout == "split" else (root / "weeds")
    weeds.mkdir()
    os.symlink("..", weeds / "loop")
    with pytest.raises(ResnetlabError, match="weeds contain no images"):
        load_dataset("folder", root, val_split=0.25)


def test_only_links_are_resolved_so_a_large_folder_costs_no_system_call_per_photo(tmp_path, monkeypatch) -> None:
    root = make_image_folder(tmp_path / "many", classes=("a", "b"), per_class=40, splits=("train", "test"))
    (root / "train" / "a" / "nested").mkdir()
    for k in range(40):
        (root / "train" / "a" / "nested" / f"{k}.png").write_bytes((root / "train" / "a" / "000.png").read_bytes())
    os.symlink("000.png", root / "train" / "b" / "again.png")
    calls: list[str] = []
    real = os.path.realpath
    monkeypatch.setattr(os.path, "realpath", lambda path, *a, **k: calls.append(str(path)) or real(path, *a, **k))
    every = [root / s / c for s in ("train", "test") for c in ("a", "b")]
    scan = scan_classes(every[:2], every)
    assert len(scan.samples) == 120 and scan.passed == [f"{root}/train/b/again.png (a link to {root}/train/b/000.png, read as itself)"]
    assert len(calls) <= 2 * len(every) + 1  # the class folders and the one link: none per photo (120 photos)
    assert scan.samples[40] == (str(root / "train" / "a" / "nested" / "0.png"), 0)  # nested photos under their class, sorted
