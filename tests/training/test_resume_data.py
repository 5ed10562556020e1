"""A resumed run sees the images it started on, or says what changed."""

from __future__ import annotations

import pytest

from resnetlab.cli import main
from resnetlab.errors import ResnetlabError
from resnetlab.training import train
from tests.builders import make_image_folder, tiny_config


def folder_run(tmp_path):
    data = make_image_folder(tmp_path / "photos", per_class=8, size=8)
    config = tiny_config(tmp_path / "run", dataset="folder", data_dir=str(data), epochs=1)
    train(config)
    return data, config


def test_a_resume_on_added_or_deleted_images_names_the_class_folders_and_changes_nothing(tmp_path) -> None:
    data, config = folder_run(tmp_path)
    last = (tmp_path / "run" / "checkpoints" / "last.pt").read_bytes()
    sorted((data / "train" / "cat").iterdir())[0].unlink()
    (data / "train" / "dog" / "extra.png").write_bytes((data / "train" / "fox" / sorted(
        p.name for p in (data / "train" / "fox").iterdir())[0]).read_bytes())
    with pytest.raises(ResnetlabError, match=r"images in .* changed since the run started \(train/cat has 7 images, it had 8; "
                                             r"train/dog has 9 images, it had 8\).*accept_changed_data=True"):
        train(tiny_config(tmp_path / "run", dataset="folder", data_dir=str(data), epochs=2), resume=True)
    assert (tmp_path / "run" / "checkpoints" / "last.pt").read_bytes() == last


def test_an_explicit_flag_goes_on_and_the_log_records_it(tmp_path, capsys) -> None:
    data, config = folder_run(tmp_path)
    sorted((data / "test" / "fox").iterdir())[0].unlink()
    assert main(["train", "--resume", str(tmp_path / "run"), "--epochs", "2", "--accept-changed-data"]) == 0
    log = (tmp_path / "run" / "train.log").read_text()
    assert "resuming on changed data" in log and "test/fox has 7 images, it had 8" in log


def test_the_same_images_resume_without_a_word(tmp_path) -> None:
    data, config = folder_run(tmp_path)
    summary = train(tiny_config(tmp_path / "run", dataset="folder", data_dir=str(data), epochs=2), resume=True)
    assert summary["epochs"] == 2
    assert "changed data" not in (tmp_path / "run" / "train.log").read_text()
