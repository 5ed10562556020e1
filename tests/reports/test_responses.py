"""``responses`` (the paper's Fig. 7) on run folders and plain weights files: the CSV, the figure,
the command line, and ``report --responses``."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from PIL import Image

from resnetlab.cli import main
from resnetlab.errors import ResnetlabError
from resnetlab.evaluation.responses import measure_responses
from resnetlab.models import create_model
from resnetlab.reports import report
from resnetlab.reports.responses import plot_responses, responses, responses_figure
from tests.builders import fake_checkpoint, fake_run


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def tiny_run(tmp_path: Path, tiny_image_folder: Path) -> Path:
    """A run folder made by the test builders: resnet20 (untrained) with a checkpoint, on 16x16 images."""
    run = fake_run(tmp_path / "runs" / "r20", "resnet20", dataset="folder")
    fake_checkpoint(run, tiny_image_folder)
    return run


def reference_style_file(path: Path, model: str = "resnet20", seed: int = 1) -> tuple[Path, dict[str, torch.Tensor]]:
    """Weights saved as the reference CIFAR reproduction saves them: {"state_dict": {"module.conv1.weight", ...,
    "module.linear.weight"}, "best_prec1": ...}, through DataParallel, the classifier named ``linear``."""
    torch.manual_seed(seed)
    ours = create_model(model, num_classes=3).state_dict()
    for key, value in ours.items():  # BatchNorm statistics of a trained net, not a fresh one's 0/1
        if key.endswith("running_var"):
            value.uniform_(0.3, 2.0)
        elif key.endswith("running_mean"):
            value.normal_(0, 0.2)
    saved = {"module." + ("linear." + k[3:] if k.startswith("fc.") else k): v for k, v in ours.items()}
    torch.save({"state_dict": saved, "best_prec1": 91.25}, path)
    return path, ours


def test_a_run_folder_gives_one_row_per_3x3_convolution(tiny_run: Path, tmp_path: Path) -> None:
    result = responses([tiny_run], tmp_path / "fig7", device="cpu")
    rows = read_rows(tmp_path / "fig7" / "responses.csv")
    assert list(rows[0]) == ["run", "layer", "name", "std"]
    assert len(rows) == 19  # resnet20: the stem and 18 block convolutions, all 3x3
    assert [r["layer"] for r in rows] == [str(i) for i in range(1, 20)]
    assert {r["run"] for r in rows} == {"r20"} and rows[0]["name"] == "conv1" and rows[-1]["name"] == "layer3.2.conv2"
    assert all(float(r["std"]) > 0 for r in rows)
    run = result["runs"][0]
    assert (run["model"], run["residual"], run["images"]) == ("resnet20", True, 36)  # the tiny folder's 36 test images
    assert [float(r["std"]) for r in rows] == pytest.approx([layer["std"] for layer in run["layers"]], rel=1e-7)
    with Image.open(tmp_path / "fig7" / "responses.png") as image:
        assert image.format == "PNG" and image.height > image.width * 0.8  # two panels, one above the other


def test_a_reference_style_weights_file_gives_what_the_same_weights_give_as_a_run(tmp_path: Path, tiny_image_folder: Path) -> None:
    weights, state = reference_style_file(tmp_path / "resnet20-12fca82f.th")
    run = fake_run(tmp_path / "runs" / "same", "resnet20", dataset="folder")
    ckpt_path = fake_checkpoint(run, tiny_image_folder)
    ckpt = torch.load(ckpt_path, weights_only=True)
    ckpt["state_dict"] = state
    torch.save(ckpt, ckpt_path)
    norm = ckpt["normalization"]
    result = responses([weights, run], tmp_path / "fig7", model="resnet20", dataset="folder", data_dir=tiny_image_folder,
                       mean=norm["mean"], std=norm["std"], device="cpu")
    from_file, from_run = result["runs"]
    assert from_file["run"] == "resnet20-12fca82f" and from_file["images"] == 36
    assert [x["std"] for x in from_file["layers"]] == pytest.approx([x["std"] for x in from_run["layers"]], rel=1e-6)
    assert len(read_rows(tmp_path / "fig7" / "responses.csv")) == 2 * 19


def test_model_is_refused_for_a_run_and_needed_for_a_weights_file(tiny_run: Path, tmp_path: Path, tiny_image_folder: Path) -> None:
    with pytest.raises(ResnetlabError, match="model names the architecture of plain weights files, and there are none here"):
        responses([tiny_run], tmp_path / "out", model="resnet20", device="cpu")
    with pytest.raises(ResnetlabError, match="names its model and normalisation: drop model, mean and std"):
        measure_responses(tiny_run, mean=[0.5] * 3, device="cpu")
    weights, _ = reference_style_file(tmp_path / "w.th")
    with pytest.raises(ResnetlabError, match="plain weights file: pass model=NAME .* and dataset=NAME"):
        responses([weights], tmp_path / "out", device="cpu")
    with pytest.raises(ResnetlabError, match="2 label\\(s\\) given for 1 source"):
        responses([tiny_run], tmp_path / "out", names=["a", "b"], device="cpu")
    assert not (tmp_path / "out").exists()


def test_figure_has_two_panels_plain_dashed_resnet_solid(tiny_trained_runs: list[Path], tmp_path: Path) -> None:
    measured = [measure_responses(run, device="cpu", progress=False) for run in tiny_trained_runs]  # resnet20, plain20
    assert plot_responses(measured, tmp_path / "fig7.png").is_file()
    figure = responses_figure(measured)
    assert len(figure.axes) == 2
    top, bottom = figure.axes
    assert [line.get_linestyle() for line in top.lines] == ["-", "--"]
    assert [line.get_label() for line in bottom.lines] == ["resnet20", "plain20"]
    for top_line, bottom_line in zip(top.lines, bottom.lines):
        assert list(bottom_line.get_ydata()) == sorted(top_line.get_ydata(), reverse=True)


def test_command_line_writes_the_csv_and_figure(tiny_trained_runs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "fig7"
    assert main(["responses", *map(str, tiny_trained_runs), "--out", str(out), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "resnet20 (resnet20, ResNet, 36 test images): 19 3x3 layers" in text
    assert "plain20 (plain20, plain, 36 test images): 19 3x3 layers" in text
    rows = read_rows(out / "responses.csv")
    assert [sum(r["run"] == name for r in rows) for name in ("resnet20", "plain20")] == [19, 19]


def test_report_with_responses_shows_the_figure(tiny_trained_runs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "report"
    runs = [*tiny_trained_runs, fake_run(tmp_path / "no-checkpoint", "resnet56")]
    assert main(["report", *map(str, runs), "--out", str(out), "--samples", "4", "--device", "cpu", "--responses"]) == 0
    page = (out / "index.html").read_text()
    assert 'src="figures/responses.png"' in page and 'href="figures/responses.csv"' in page
    assert "Layer responses of no-checkpoint not measured: it has no checkpoint." in page
    assert len(read_rows(out / "figures" / "responses.csv")) == 2 * 19
    with pytest.raises(ResnetlabError, match="drop checkpoints=False or responses=True"):
        report(tiny_trained_runs, tmp_path / "other", checkpoints=False, responses=True)


def test_each_weights_file_gets_its_own_model(tmp_path: Path, tiny_image_folder: Path) -> None:
    """plain20 and option-A resnet20 hold the same tensors: only --model tells a plain net from a ResNet."""
    first, _ = reference_style_file(tmp_path / "a.th", "resnet20")
    second, _ = reference_style_file(tmp_path / "b.th", "plain20")
    result = responses([first, second], tmp_path / "fig7", model=["resnet20", "plain20"], dataset="folder",
                       data_dir=tiny_image_folder, device="cpu")
    assert [(r["model"], r["residual"]) for r in result["runs"]] == [("resnet20", True), ("plain20", False)]
    with pytest.raises(ResnetlabError, match="gives 3 architectures for 2 plain weights files"):
        responses([first, second], tmp_path / "other", model=["resnet20", "plain20", "resnet56"], dataset="folder",
                  data_dir=tiny_image_folder, device="cpu")


def test_weights_with_nan_are_refused(tmp_path: Path, tiny_image_folder: Path) -> None:
    weights, _ = reference_style_file(tmp_path / "nan.th")
    content = torch.load(weights, weights_only=True)
    content["state_dict"]["module.layer2.0.bn1.running_var"][3] = float("nan")
    torch.save(content, weights)
    with pytest.raises(ResnetlabError, match="not finite from layer 8 \\(layer2.0.conv1\\) on"):
        responses([weights], tmp_path / "out", model="resnet20", dataset="folder", data_dir=tiny_image_folder, device="cpu")
    assert not (tmp_path / "out").exists()
