"""A photo stored sideways with an EXIF orientation tag: one rule, in every decoder, training and predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from resnetlab.checkpoint import FORMAT, VERSION
from resnetlab.cli import main
from resnetlab.data import decode, load_dataset
from resnetlab.data.decode import decode_photo
from resnetlab.data.photos import eval_resize
from resnetlab.errors import ResnetlabError
from resnetlab.evaluation import Predictor
from resnetlab.evaluation.preprocess import checkpoint_exif_orientation, open_rgb
from resnetlab.models import create_model
from resnetlab.training.config import resolve_config
from tests.builders import make_photo_folder, photo_pixels

ROTATE_90_CW = 6  # "the top of the stored pixels is on the right": a phone held upright, sensor landscape


def sideways_jpeg(path: Path, width: int = 120, height: int = 90, seed: int = 0) -> Path:
    """A landscape JPEG (width x height as stored) tagged to be shown turned 90 degrees clockwise."""
    exif = Image.Exif()
    exif[0x0112] = ROTATE_90_CW
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(photo_pixels(width, height, seed, 40), "RGB").save(path, "JPEG", quality=95, exif=exif)
    return path


def upright(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def test_every_decoder_reads_as_stored_by_default_and_upright_when_asked(tmp_path) -> None:
    photo = sideways_jpeg(tmp_path / "phone.jpg")
    assert open_rgb(photo).size == (120, 90) and open_rgb(photo, "apply").size == (90, 120)
    assert np.array_equal(np.asarray(open_rgb(photo, "apply")), upright(photo))
    assert decode_photo(str(photo), 37).shape == (3, 37, 49) and decode_photo(str(photo), 37, "apply").shape == (3, 49, 37)
    stored = decode._decode_jpeg(str(photo), None)  # torchvision's decoder, the small-image path
    turned = decode._decode_jpeg(str(photo), None, "apply")
    assert stored.shape == (90, 120, 3) and turned.shape == (120, 90, 3)
    assert np.array_equal(turned, decode._decode_pil(str(photo), None, "apply"))  # both decoders turn it the same way
    assert np.array_equal(turned, upright(photo))


@pytest.mark.parametrize("stream", [False, True])
def test_a_photo_folder_is_cached_and_streamed_by_the_rule(tmp_path, stream) -> None:
    root = make_photo_folder(tmp_path / "p", per_class=2)
    sideways_jpeg(root / "train" / "ant" / "000.jpg")  # replaces a 120x90 photo of the same name
    shapes = {}
    for rule in ("ignore", "apply"):
        bundle = load_dataset("folder", root, image_size=32, stream=stream, exif_orientation=rule)
        first = bundle.train.decoded(0) if stream else bundle.train.image(0)
        shapes[rule] = tuple(first.shape)
        assert bundle.extra["exif_orientation"] == {"rule": rule, "tagged": 1, "checked": 8, "images": 8,
                                                    "examples": [str(root / "train" / "ant" / "000.jpg")]}
    resize = eval_resize(32)
    assert shapes == {"ignore": (3, resize, 49), "apply": (3, 49, resize)}


def test_small_images_take_the_rule_too(tmp_path) -> None:
    for split in ("train", "test"):
        for c in ("a", "b"):
            for k in range(2):
                sideways_jpeg(tmp_path / "s" / split / c / f"{k}.jpg", width=16, height=8, seed=k)
    assert load_dataset("folder", tmp_path / "s").image_shape == (3, 8, 16)
    assert load_dataset("folder", tmp_path / "s", exif_orientation="apply").image_shape == (3, 16, 8)
    with pytest.raises(ResnetlabError, match="exif_orientation must be one of ignore, apply, got 'upright'"):
        load_dataset("folder", tmp_path / "s", exif_orientation="upright")


def test_data_info_counts_tagged_photos(tmp_path, capsys) -> None:
    root = make_photo_folder(tmp_path / "p", per_class=2)
    sideways_jpeg(root / "val" / "bee" / "009.jpg")
    assert main(["data", "info", "--dataset", "folder", "--data-dir", str(root), "--image-size", "32"]) == 0
    assert (f"orientation  1 of the 9 images carries an EXIF orientation tag (e.g. {root}/val/bee/009.jpg): read as stored, "
            "as torchvision reads them (--exif-orientation apply turns them upright)") in capsys.readouterr().out
    assert main(["data", "info", "--dataset", "folder", "--data-dir", str(root), "--image-size", "32", "--json",
                 "--exif-orientation", "apply"]) == 0
    assert json.loads(capsys.readouterr().out)["exif_orientation"]["rule"] == "apply"


def test_the_training_rule_is_a_checked_config_field() -> None:
    assert resolve_config().exif_orientation == "ignore"
    assert resolve_config(overrides={"exif_orientation": "apply"}).to_dict()["exif_orientation"] == "apply"
    with pytest.raises(ResnetlabError, match="exif_orientation must be one of ignore, apply, got 'sideways'"):
        resolve_config(overrides={"exif_orientation": "sideways"})


def tiny_checkpoint(**records) -> dict:
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=2)
    return {"format": FORMAT, "version": VERSION, "model": {"name": "resnet20", "num_classes": 2, "in_channels": 3, "options": {}},
            "classes": ["a", "b"], "normalization": {"mean": [0.5] * 3, "std": [0.25] * 3}, "input_size": [3, 32, 32],
            "preprocess": {"pipeline": "photos", "resize": eval_resize(32)}, "state_dict": model.state_dict(), **records}


def test_predict_reads_files_by_the_runs_rule(tmp_path) -> None:
    photo = sideways_jpeg(tmp_path / "phone.jpg")
    Image.fromarray(upright(photo)).save(tmp_path / "upright.png")  # the same pixels, turned, with no tag
    files = [photo, tmp_path / "upright.png"]

    def probabilities(ckpt: dict, **options) -> list[list[float]]:
        results = Predictor(ckpt, device="cpu", **options).predict(files, topk=2)
        return [[p["probability"] for p in sorted(r["predictions"], key=lambda p: p["index"])] for r in results]

    turned = probabilities(tiny_checkpoint(config={"exif_orientation": "apply"}))
    assert turned[0] == turned[1]  # the tagged photo is read upright
    stored = probabilities(tiny_checkpoint(config={}))  # a run from before the rule: as stored, as torchvision
    assert stored[0] != stored[1] and stored[1] == turned[1]
    assert probabilities(tiny_checkpoint(config={}), exif_orientation="apply") == turned  # --exif-orientation apply
    assert checkpoint_exif_orientation({"preprocess": {"exif_orientation": "apply"}, "config": {"exif_orientation": "ignore"}}) == "apply"


def test_predict_image_in_memory_follows_the_rule(tmp_path) -> None:
    photo = sideways_jpeg(tmp_path / "phone.jpg")
    predictor = Predictor(tiny_checkpoint(config={"exif_orientation": "apply"}), device="cpu")
    with Image.open(photo) as image:
        in_memory = predictor.predict_image(image, topk=2)
    assert in_memory == predictor.predict([photo], topk=2)[0]["predictions"]


def test_training_reads_its_photos_by_the_configured_rule_and_records_it(tmp_path) -> None:
    """``train --exif-orientation apply`` reaches the loader (the sideways photo is cached upright)
    and the checkpoint's preprocess record, which predict then follows."""
    from resnetlab.training import train
    from resnetlab.training.run import load_data

    root = make_photo_folder(tmp_path / "p", per_class=2)
    sideways_jpeg(root / "train" / "ant" / "000.jpg")
    values = {"model": "resnet18", "dataset": "folder", "data_dir": str(root), "image_size": 32, "batch_size": 2,
              "max_iters": 1, "device": "cpu", "quiet": True, "out": str(tmp_path / "run")}
    heights = {rule: load_data(resolve_config("paper", overrides={**values, "exif_orientation": rule})).train.image(0).shape[-2]
               for rule in ("ignore", "apply")}
    assert heights["apply"] > heights["ignore"]  # stored landscape, shown portrait
    train(resolve_config("paper", overrides={**values, "exif_orientation": "apply"}))
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["preprocess"]["exif_orientation"] == "apply" and checkpoint_exif_orientation(ckpt) == "apply"


def test_the_predict_figure_shows_each_photo_as_the_model_saw_it(tmp_path, monkeypatch) -> None:
    from resnetlab.evaluation import plots

    photo = sideways_jpeg(tmp_path / "phone.jpg")
    shown: list[tuple[int, int]] = []
    real = plots.open_rgb
    monkeypatch.setattr(plots, "open_rgb", lambda path, rule: shown.append(real(path, rule).size) or real(path, rule))
    result = [{"path": str(photo), "predictions": [{"class": "ant", "probability": 0.9}]}]
    plots.plot_predictions(result, tmp_path / "shown.png", exif_orientation="apply")
    plots.plot_predictions(result, tmp_path / "stored.png")
    assert shown == [(90, 120), (120, 90)]  # upright by the run's rule; as stored by default
