"""safetensors weights and model folders: plain torchvision loads them strictly, and every command
that takes a checkpoint (predict, eval, finetune --init-from, export) takes them too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import load_file, save_file

from resnetlab.checkpoint import load_checkpoint
from resnetlab.cli import main
from resnetlab.errors import ResnetlabError
from resnetlab.evaluation import Predictor, evaluate, export
from resnetlab.model_folder import CONFIG, MODEL_CARD, WEIGHTS
from tests.builders import make_checkpoint, make_image_folder, tiny_train_overrides, write_photo


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """resnet20 trained for 2 short epochs on a 3-class folder of 8x8 images: a real run folder."""
    from resnetlab.training import resolve_config, train

    root = tmp_path_factory.mktemp("model-folder")
    data = make_image_folder(root / "data", per_class={"train": 8, "test": 4})
    out = root / "run"
    train(resolve_config("paper", overrides={**tiny_train_overrides(data), "model": "resnet20", "out": str(out), "batch_size": 8}))
    return out


def photo_checkpoint(tmp_path: Path) -> Path:
    """An (untrained) resnet34 photo checkpoint of 4 classes at 32 px: the ImageNet family, small."""
    return make_checkpoint(tmp_path / "r34.pt", model="resnet34", classes=["daisy", "rose", "tulip", "iris"],
                           input_size=(3, 32, 32), preprocess={"pipeline": "photos", "resize": 36}, seed=3)


def test_safetensors_of_a_resnet34_loads_strictly_into_torchvision_with_predicts_probabilities(tmp_path: Path) -> None:
    checkpoint = photo_checkpoint(tmp_path)
    result = export(checkpoint, tmp_path / "r34.safetensors", format="safetensors")
    assert result["max_abs_diff"] == 0
    model = torchvision.models.resnet34(num_classes=4)
    model.load_state_dict(load_file(tmp_path / "r34.safetensors"), strict=True)
    model.eval()
    photos = [write_photo(tmp_path / f"p{i}.jpg", 50 + 7 * i, 40, "RGB", "JPEG", seed=i) for i in range(3)]
    predictor = Predictor(checkpoint, device="cpu")
    predicted = predictor.predict(photos, topk=4)
    with torch.no_grad():
        expected = model(torch.stack([predictor.transform(predictor_image(p)) for p in photos])).softmax(1)
    for item, row in zip(predicted, expected):
        for p in item["predictions"]:
            assert abs(p["probability"] - row[p["index"]].item()) <= 1e-6


def predictor_image(path: Path):
    from resnetlab.evaluation.preprocess import open_rgb

    return open_rgb(path)


def test_a_bare_safetensors_export_is_a_checkpoint_and_a_foreign_one_is_weights(tmp_path: Path) -> None:
    checkpoint = photo_checkpoint(tmp_path)
    export(checkpoint, tmp_path / "r34.safetensors", format="safetensors")
    photo = write_photo(tmp_path / "p.png", 60, 45, "RGB", "PNG", seed=1)
    assert Predictor(tmp_path / "r34.safetensors").predict([photo]) == Predictor(checkpoint).predict([photo])
    foreign = tmp_path / "foreign.safetensors"  # a state dict saved by someone else: no description
    save_file(load_file(tmp_path / "r34.safetensors"), foreign)
    with pytest.raises(ResnetlabError, match="not a resnetlab checkpoint"):
        load_checkpoint(foreign)
    via_weights = Predictor.from_weights("resnet34", foreign, ["daisy", "rose", "tulip", "iris"], image_size=32)
    assert [p["index"] for p in via_weights.predict([photo])[0]["predictions"]] == \
        [p["index"] for p in Predictor(checkpoint).predict([photo])[0]["predictions"]]


def test_a_folder_export_describes_itself(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "hub"
    export(tiny_run, out, format="folder")
    assert sorted(p.name for p in out.iterdir()) == [MODEL_CARD, CONFIG, WEIGHTS]
    config = json.loads((out / CONFIG).read_text())
    ckpt = load_checkpoint(tiny_run)
    assert (config["model"], config["num_classes"], config["classes"]) == ("resnet20", 3, ["cat", "dog", "fox"])
    assert (config["mean"], config["std"]) == (ckpt["normalization"]["mean"], ckpt["normalization"]["std"])
    assert config["preprocess"] == ckpt["preprocess"] and config["image_size"] == ckpt["input_size"][1]
    card = (out / MODEL_CARD).read_text()
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert f"{summary['final']['test_acc']:.4f}" in card and "recipe: paper" in card
    assert "torchvision" not in card  # a CIFAR net: no torchvision twin to load it into


def test_a_folder_round_trips_through_predict_eval_and_finetune(tiny_run: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "hub"
    assert main(["export", str(tiny_run), "--format", "folder", "--out", str(out)]) == 0
    images = sorted((Path(load_checkpoint(tiny_run)["dataset"]["data_dir"]) / "test").rglob("*.png"))
    assert Predictor(out).predict(images) == Predictor(tiny_run).predict(images)
    capsys.readouterr()
    assert main(["eval", str(out), "--json", "--out", str(tmp_path / "eval")]) == 0
    from_folder = json.loads(capsys.readouterr().out)
    assert from_folder["top1"] == evaluate(tiny_run, out=tmp_path / "eval-run")["top1"]
    data = load_checkpoint(tiny_run)["dataset"]["data_dir"]
    assert main(["finetune", "--init-from", str(out), "--data-dir", data, "--out", str(tmp_path / "next"), "--epochs", "1",
                 "--device", "cpu", "--batch-size", "8", "--quiet"]) == 0
    pretrained = json.loads((tmp_path / "next" / "summary.json").read_text())["pretrained"]
    assert pretrained["new"] == [] and len(pretrained["loaded"]) == len(
        [k for k in load_checkpoint(tiny_run)["state_dict"] if not k.endswith("num_batches_tracked")])


def test_an_export_never_replaces_other_files_and_replaces_its_own_only_when_asked(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "hub"
    export(tiny_run, out, format="folder")
    with pytest.raises(ResnetlabError, match="pass overwrite=True to replace it"):
        export(tiny_run, out, format="folder")
    export(tiny_run, out, format="folder", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hub"]  # nothing left aside
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    with pytest.raises(ResnetlabError, match="holds other files"):
        export(tiny_run, other, format="folder", overwrite=True)
    assert (other / "notes.txt").read_text() == "keep"
    with pytest.raises(ResnetlabError, match="run folder"):
        export(out, tiny_run, format="folder", overwrite=True)
    with pytest.raises(ResnetlabError, match=r"end in \.safetensors"):
        export(tiny_run, tmp_path / "w.bin", format="safetensors")


@pytest.mark.parametrize("damage, message", [
    (lambda f: (f / CONFIG).write_text("{not json"), "is not valid JSON"),
    (lambda f: (f / CONFIG).write_text(json.dumps({"format": "resnetlab-model", "version": 1})), "damaged model description"),
    (lambda f: (f / CONFIG).write_text(json.dumps({"format": "resnetlab-model", "version": 99})), "newer resnetlab"),
    (lambda f: (f / WEIGHTS).write_bytes((f / WEIGHTS).read_bytes()[:100]), "not a readable safetensors file"),
])
def test_a_damaged_model_folder_is_one_message(tiny_run: Path, tmp_path: Path, damage, message: str,
                                               capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "hub"
    export(tiny_run, out, format="folder")
    damage(out)
    assert main(["predict", str(out), str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
