"""What ``predict`` writes and in which arithmetic: ``--show`` never replaces a photo or an
existing file unasked, and the run form and the weights form give the same probabilities."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from resnetlab.checkpoint import atomic_save
from resnetlab.cli import main
from resnetlab.evaluation.plots import check_figure_path, figure_formats, plot_predictions
from resnetlab.evaluation.weights import weights_checkpoint
from resnetlab.models import create_model
from tests.builders import make_checkpoint, write_image

CPU = ["--device", "cpu"]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_line_error(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err
    assert err.startswith("resnetlab: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_show_refuses_to_write_over_the_photo_it_predicts_even_with_overwrite(tmp_path: Path, capsys) -> None:
    ckpt = make_checkpoint(tmp_path / "c.pt")
    photo = write_image(tmp_path / "pred" / "keep.png")
    before = digest(photo)
    for extra in ([], ["--overwrite"]):
        assert main(["predict", str(ckpt), str(photo), "--show", str(photo), *CPU, *extra]) == 2
        assert f"{photo} is one of the images being shown" in one_line_error(capsys)
    spelled_otherwise = tmp_path / "pred" / ".." / "pred" / "keep.png"  # and the photo inside a folder given
    assert main(["predict", str(ckpt), str(tmp_path / "pred"), "--show", str(spelled_otherwise), "--overwrite", *CPU]) == 2
    assert "is one of the images being shown" in one_line_error(capsys)
    assert digest(photo) == before


def test_show_replaces_an_existing_file_only_with_overwrite(tmp_path: Path, capsys) -> None:
    ckpt = make_checkpoint(tmp_path / "c.pt")
    photo = write_image(tmp_path / "cat.png")
    figure = tmp_path / "figure.png"
    figure.write_bytes(b"an older figure")
    assert main(["predict", str(ckpt), str(photo), "--show", str(figure), *CPU]) == 2
    assert f"{figure} already exists: pass --overwrite" in one_line_error(capsys)
    assert figure.read_bytes() == b"an older figure"
    assert main(["predict", str(ckpt), str(photo), "--show", str(figure), "--overwrite", *CPU]) == 0
    assert figure.read_bytes().startswith(b"\x89PNG")
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []


@pytest.mark.parametrize("name", ["weights.pth", "figure", "notes.txt"])
def test_show_with_a_file_type_matplotlib_cannot_write_is_refused_before_predicting(tmp_path: Path, capsys, name: str) -> None:
    ckpt = make_checkpoint(tmp_path / "c.pt")
    photo = write_image(tmp_path / "cat.png")
    assert main(["predict", str(ckpt), str(photo), "--show", str(tmp_path / name), *CPU]) == 2
    err = one_line_error(capsys)
    assert f"cannot save a figure as {tmp_path / name}" in err and "end the name with .png, .jpg, .pdf, .svg" in err
    assert not (tmp_path / name).exists()
    assert capsys.readouterr().out == ""  # refused before any prediction was printed


def test_every_listed_figure_type_is_one_matplotlib_writes(tmp_path: Path) -> None:
    photo = write_image(tmp_path / "cat.png")
    results = [{"path": str(photo), "predictions": [{"class": "cat", "index": 0, "probability": 0.75}]}]
    assert {"png", "jpg", "pdf", "svg"} <= set(figure_formats())
    for kind, magic in (("png", b"\x89PNG"), ("pdf", b"%PDF"), ("jpg", b"\xff\xd8")):
        path = plot_predictions(results, tmp_path / f"shown.{kind}")
        assert path.read_bytes().startswith(magic)
    assert check_figure_path(tmp_path / "new.svg") == tmp_path / "new.svg"


def test_a_failed_figure_save_keeps_the_old_file(tmp_path: Path, monkeypatch) -> None:
    from matplotlib.figure import Figure

    from resnetlab.files import WriteError

    photo = write_image(tmp_path / "cat.png")
    figure = tmp_path / "shown.png"
    figure.write_bytes(b"the old figure")

    def disk_full(self, fname, **kwargs):
        Path(fname).write_bytes(b"half a PNG")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", disk_full)
    results = [{"path": str(photo), "predictions": [{"class": "cat", "index": 0, "probability": 0.75}]}]
    with pytest.raises(WriteError, match=f"cannot write {figure}: No space left on device"):
        plot_predictions(results, figure, overwrite=True)
    assert figure.read_bytes() == b"the old figure"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.png", "shown.png"]


@pytest.fixture
def run_and_its_weights(tmp_path: Path) -> dict[str, Path]:
    """One model as a bf16 run's checkpoint and as the weights.pth + class_indices.json it leaves."""
    torch.manual_seed(3)
    net = create_model("resnet20", num_classes=3)
    atomic_save(net.state_dict(), tmp_path / "weights.pth")
    (tmp_path / "class_indices.json").write_text(json.dumps({"0": "cat", "1": "dog", "2": "fox"}))
    ckpt = weights_checkpoint("resnet20", tmp_path / "weights.pth", tmp_path / "class_indices.json", image_size=32,
                              mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    ckpt["config"] = {"precision": "bf16"}  # what a run trained in bf16 records
    atomic_save(ckpt, tmp_path / "run.pt")
    return {"run": tmp_path / "run.pt", "weights": tmp_path / "weights.pth", "classes": tmp_path / "class_indices.json",
            "photo": write_image(tmp_path / "cat.png", size=(48, 40), seed=5)}


def _probabilities(argv: list[str], capsys) -> list[float]:
    assert main(["predict", *argv, "--json", *CPU]) == 0
    return [p["probability"] for p in sorted(json.loads(capsys.readouterr().out)[0]["predictions"], key=lambda p: p["index"])]


def test_the_run_form_and_the_weights_form_give_the_same_probabilities(run_and_its_weights, capsys) -> None:
    files = run_and_its_weights
    from_run = _probabilities([str(files["run"]), str(files["photo"])], capsys)
    from_weights = _probabilities(["--model", "resnet20", "--weights", str(files["weights"]), "--classes", str(files["classes"]),
                                   "--image-size", "32", str(files["photo"])], capsys)
    assert from_run == pytest.approx(from_weights, abs=1e-6)
    in_bf16 = _probabilities([str(files["run"]), str(files["photo"]), "--precision", "bf16"], capsys)
    assert max(abs(a - b) for a, b in zip(in_bf16, from_run)) > 1e-6  # the run's bf16 only when asked: other numbers


def test_the_predictor_runs_in_fp32_unless_asked(run_and_its_weights) -> None:
    from resnetlab.evaluation import Predictor

    run = run_and_its_weights["run"]
    assert Predictor(run, device="cpu").precision == "fp32"
    assert Predictor(run, device="cpu", precision=None).precision == "bf16"  # the run's own, as evaluate uses
    assert Predictor(run, device="cpu", precision="bf16").precision == "bf16"


def test_an_input_smaller_than_the_model_takes_is_refused(tmp_path: Path, capsys) -> None:
    from resnetlab.errors import ResnetlabError
    from resnetlab.evaluation import Predictor

    ckpt = make_checkpoint(tmp_path / "c.pt", input_size=(3, 2, 2))
    with pytest.raises(ResnetlabError, match=r"^the input size 2x2 of .*c.pt is below the smallest image resnet20 takes, 4 pixels"):
        Predictor(ckpt, device="cpu")
    weights = tmp_path / "weights.pth"
    atomic_save(torch.load(ckpt, weights_only=True)["state_dict"], weights)
    (tmp_path / "classes.json").write_text(json.dumps({"0": "cat", "1": "dog", "2": "fox"}))
    photo = write_image(tmp_path / "cat.png")
    assert main(["predict", "--model", "resnet20", "--weights", str(weights), "--classes", str(tmp_path / "classes.json"),
                 "--image-size", "1", str(photo), *CPU]) == 2
    assert "--image-size 1 is below the smallest image resnet20 takes, 4 pixels" in one_line_error(capsys)


def test_a_batch_whose_layers_would_not_fit_is_refused_before_it_is_allocated(tmp_path: Path, monkeypatch) -> None:
    """64 images of 512x512 through ResNet-20: an estimated 15 GiB (16 channels at full resolution in
    every layer of its first stage), though the input batch is 0.2 GiB; three images, 0.7 GiB."""
    import resnetlab.memory as memory_module
    from resnetlab.errors import ResnetlabError
    from resnetlab.evaluation import Predictor

    monkeypatch.setattr(memory_module, "machine_memory", lambda: 8 * 2**30)
    ckpt = make_checkpoint(tmp_path / "c.pt", input_size=(3, 512, 512))
    photos = [write_image(tmp_path / "photos" / f"{i}.png", size=(8, 8), seed=i) for i in range(3)]
    predictor = Predictor(ckpt, device="cpu", batch_size=64)
    with pytest.raises(ResnetlabError, match=r"^predicting with .*c.pt \(a forward pass of resnet20 on 64 x 3x512x512\) needs "
                                             r"\d+\.\d GiB of memory, more than the 8.0 GiB this machine has: lower batch_size"):
        predictor.predict([tmp_path / "photos"] * 22)  # 66 images: full batches of 64
    assert len(predictor.predict(photos)) == 3  # three images make a batch of three, which fits
