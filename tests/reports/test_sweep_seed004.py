"""The seed004 sweep: seed 004's three d2l runs on Fashion-MNIST, as the seed ran them, and a tiny
run of it that trains."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from resnetlab import training
from resnetlab.cli import main
from resnetlab.data import load_dataset
from tests.builders import make_idx_files, read_json

SEED_RUNS = {"resnet18": 10, "resnet34": 10, "resnet50": 5}  # model: epochs


class ConfigWriter:
    """Stands in for ``training.train``: writes the resolved config.yaml a run would write, trains nothing."""

    def __call__(self, config: Any, *, resume: bool = False, overwrite: bool = False) -> dict:
        folder = Path(config.out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.yaml").write_text(yaml.safe_dump(config.to_dict()))
        (folder / "summary.json").write_text("{}")
        return {}


def test_sweep_list_names_seed004_and_its_three_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("seed004 "))
    assert "3 runs" in lines[at] and "Fashion-MNIST" in lines[at]
    assert lines[at + 1].split() == ["resnet18,", "resnet34,", "resnet50"]


def test_each_runs_config_records_the_seeds_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(training, "train", ConfigWriter(), raising=False)
    assert main(["sweep", "seed004", "--out", str(tmp_path / "seed004"), "--no-report"]) == 0
    for name, epochs in SEED_RUNS.items():
        config = yaml.safe_load((tmp_path / "seed004" / name / "config.yaml").read_text())
        assert config["model"] == name and config["dataset"] == "fashion-mnist"  # one channel: the first conv takes 1
        assert (config["recipe"], config["init"], config["normalization"], config["precision"]) == ("d2l", "xavier", "none", "fp32")
        assert (config["image_size"], config["lr"], config["momentum"], config["weight_decay"]) == (224, 0.05, 0, 0)
        assert (config["batch_size"], config["epochs"], config["max_iters"], config["milestones"]) == (128, epochs, None, [])
        assert (config["crop_padding"], config["flip"]) == (0, "none")
    # the CPU-sized variant: only the image size changes
    assert main(["sweep", "seed004", "--set", "image_size=96", "--out", str(tmp_path / "cpu"), "--no-report"]) == 0
    assert yaml.safe_load((tmp_path / "cpu" / "resnet18" / "config.yaml").read_text())["image_size"] == 96


def test_fashion_mnist_is_resized_as_d2l_resizes_it(tmp_path: Path) -> None:
    """d2l's transforms.Resize on the 28x28 PIL images is PIL's bilinear resize: ours gives the same bytes."""
    images, _ = make_idx_files(tmp_path / "idx", n_train=8, n_test=4)["t10k"]
    bundle = load_dataset("fashion-mnist", tmp_path / "idx", image_size=96, download=False)
    assert tuple(bundle.test.images.shape) == (4, 1, 96, 96) and bundle.image_shape == (1, 96, 96)
    pil = np.stack([np.asarray(Image.fromarray(image).resize((96, 96), Image.BILINEAR)) for image in images])
    assert torch.equal(bundle.test.images[:, 0], torch.from_numpy(pil))


def test_a_tiny_run_of_the_sweep_trains(tmp_path: Path) -> None:
    make_idx_files(tmp_path / "idx", n_train=50, n_test=20)
    out = tmp_path / "seed004"
    args = ["sweep", "seed004", "--only", "resnet18", "--out", str(out), "--no-report", "--set", f"data_dir={tmp_path / 'idx'}",
            "--set", "subset=32", "--set", "image_size=32", "--set", "epochs=1", "--set", "device=cpu", "--set", "quiet=true"]
    assert main(args) == 0
    summary = read_json(out / "resnet18" / "summary.json")
    assert (summary["recipe"], summary["epochs"], summary["iterations"]) == ("d2l", 1, 1)  # 32 images: one batch of 128 or fewer
    ckpt = torch.load(out / "resnet18" / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["model"]["in_channels"] == 1 and ckpt["input_size"] == [1, 32, 32]
    assert ckpt["normalization"] == {"mean": [0.0], "std": [1.0]}  # pixels in [0, 1], as d2l's ToTensor
    assert not (out / "resnet34").exists()


@pytest.mark.slow  # the real Fashion-MNIST: 60,000 images read and resized, 10,000 evaluated
def test_a_tiny_run_on_real_fashion_mnist_learns(fashion_mnist_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "seed004"
    args = ["sweep", "seed004", "--only", "resnet18", "--out", str(out), "--no-report", "--set", f"data_dir={fashion_mnist_dir}",
            "--set", "subset=1024", "--set", "image_size=32", "--set", "epochs=1", "--set", "device=cpu", "--set", "quiet=true"]
    assert main(args) == 0
    summary = read_json(out / "resnet18" / "summary.json")
    assert summary["iterations"] == 8  # 1,024 images in batches of 128
    # ten classes: chance is 0.1; eight steps leave BatchNorm's running statistics rough (0.273 measured, seed 0)
    assert summary["final"]["test_acc"] > 0.2
