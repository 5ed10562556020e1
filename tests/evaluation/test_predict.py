"""Predictor: preprocessing derived from the checkpoint, batched, sorted top-k."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from resnetlab.errors import ResnetlabError
from resnetlab.evaluation import Predictor
from resnetlab.evaluation.preprocess import build_transform, find_images, open_rgb, rgb_pixels
from resnetlab.evaluation.view_averaging import TestViews, view_averaged_logits
from tests.builders import make_checkpoint, write_image


def read_image(path: Path) -> torch.Tensor:
    """A file as the uint8 RGB (3, H, W) every image reaches ``build_transform`` in."""
    return rgb_pixels(open_rgb(path))


def test_transform_normalises_with_the_checkpoint_statistics(tmp_path: Path) -> None:
    path = write_image(tmp_path / "a.png", size=(16, 16))
    raw = read_image(path)
    x = build_transform((3, 16, 16), [0.5, 0.4, 0.3], [0.2, 0.25, 0.5])(raw)
    expected = (raw.float() / 255 - torch.tensor([0.5, 0.4, 0.3])[:, None, None]) / torch.tensor([0.2, 0.25, 0.5])[:, None, None]
    assert torch.allclose(x, expected, atol=1e-6)


@pytest.mark.parametrize("mode, size", [("RGBA", (40, 24)), ("L", (16, 16)), ("RGB", (64, 64))])
def test_any_image_becomes_the_input_the_model_expects(tmp_path: Path, mode: str, size: tuple[int, int]) -> None:
    path = write_image(tmp_path / f"x.{mode}.png", size=size, mode=mode)
    for channels in (1, 3):
        x = build_transform((channels, 16, 16), [0.5] * channels, [0.25] * channels)(read_image(path))
        assert x.shape == (channels, 16, 16) and x.dtype == torch.float32


def test_centre_crop_keeps_the_middle(tmp_path: Path) -> None:
    picture = torch.zeros(32, 64, 3, dtype=torch.uint8)
    picture[:, 12:52] = 255  # white middle of a 2:1 image, black sides
    Image.fromarray(picture.numpy()).save(tmp_path / "wide.png")
    x = build_transform((3, 16, 16), [0.0] * 3, [1.0] * 3)(read_image(tmp_path / "wide.png"))
    assert x.min() > 0.99  # the crop is all centre, none of the black sides


def test_predictions_match_the_model_and_are_sorted(tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path / "c.pt", classes=["a", "b", "c", "d"], seed=4)
    paths = [write_image(tmp_path / "imgs" / f"{i}.png", seed=i) for i in range(5)]
    write_image(tmp_path / "imgs" / "sub" / "deep.jpg", seed=9)
    (tmp_path / "imgs" / "notes.txt").write_text("not an image, skipped inside folders")
    predictor = Predictor(ckpt, batch_size=2, device="cpu")  # 6 images: three batches
    results = predictor.predict([tmp_path / "imgs"], topk=3)
    assert [Path(r["path"]).name for r in results] == ["0.png", "1.png", "2.png", "3.png", "4.png", "deep.jpg"]
    batch = torch.stack([predictor.transform(read_image(p)) for p in paths])
    with torch.no_grad():
        probs = predictor.model(batch).softmax(1)
    for r, row in zip(results, probs):
        got = [(p["index"], p["probability"]) for p in r["predictions"]]
        values, indices = row.topk(3)
        assert [i for i, _ in got] == indices.tolist()
        assert [p for _, p in got] == pytest.approx(values.tolist(), abs=1e-6)
        assert all(p["class"] == "abcd"[p["index"]] for p in r["predictions"])
    assert len(predictor.predict([paths[0]], topk=99)[0]["predictions"]) == 4  # capped at the class count


def test_predictions_use_the_runs_test_time_views_unless_told(tmp_path: Path) -> None:
    """A run that evaluated itself on 18 views predicts files on the same 18 (black borders)."""
    ckpt = make_checkpoint(tmp_path / "c.pt", config={"test_time_flip": True, "test_time_shift": 1})
    images = torch.stack([build_transform((3, 16, 16), [0.5] * 3, [0.25] * 3)(read_image(write_image(tmp_path / f"{i}.png", seed=i)))
                          for i in range(3)])
    as_run, single = Predictor(ckpt, device="cpu"), Predictor(ckpt, flip=False, shift=0, device="cpu")
    assert (as_run.views, single.views) == (TestViews(flip=True, shift=1), TestViews())
    with torch.no_grad():
        expected = view_averaged_logits(as_run.model, images, as_run.views, fill=(0 - 0.5) / 0.25).softmax(1)
        plain = single.model(images).softmax(1)
    assert torch.allclose(as_run.probabilities(images), expected, atol=1e-6)
    assert torch.allclose(single.probabilities(images), plain, atol=1e-6)
    assert not torch.allclose(expected, plain, atol=1e-4)


def test_a_checkpoints_recorded_views_are_used_before_its_config(tmp_path: Path) -> None:
    """Checkpoints record the run's final views; older ones, without the entry, are read from their config."""
    recorded = {"flip": True, "shift": 2, "ten_crop": False}
    ckpt = make_checkpoint(tmp_path / "c.pt", config={"test_time_flip": False}, test_views=recorded)
    assert Predictor(ckpt, device="cpu").views.as_dict() == recorded
    assert Predictor(ckpt, shift=0, device="cpu").views == TestViews(flip=True)


def test_find_images_expands_folders_sorted(tmp_path: Path) -> None:
    b = write_image(tmp_path / "d" / "b.png")
    a = write_image(tmp_path / "d" / "a.JPG")
    single = write_image(tmp_path / "z.png")
    assert find_images([single, tmp_path / "d"]) == [single, a, b]


def test_an_image_in_memory_is_predicted_as_its_file_is(tmp_path: Path) -> None:
    ckpt = make_checkpoint(tmp_path / "c.pt", classes=["a", "b", "c", "d"], seed=4)
    path = write_image(tmp_path / "x.png", size=(24, 20), seed=3)
    predictor = Predictor(ckpt, device="cpu")
    with Image.open(path) as image:
        in_memory = predictor.predict_image(image, topk=2)
    assert in_memory == predictor.predict([path], topk=2)[0]["predictions"] and len(in_memory) == 2
    with pytest.raises(ResnetlabError, match="takes a PIL image, got str"):
        predictor.predict_image(str(path))


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_a_batch_size_that_is_no_positive_whole_number_is_refused(tmp_path: Path, batch_size) -> None:
    with pytest.raises(ResnetlabError, match=r"batch_size must be a whole number >= 1"):
        Predictor(make_checkpoint(tmp_path / "c.pt"), batch_size=batch_size)


def test_predictor_and_command_line_default_to_the_same_classes(tmp_path: Path) -> None:
    from resnetlab.cli import predict_cmd
    from resnetlab.evaluation import predict

    assert predict_cmd.ALL_CLASSES_UP_TO == predict.ALL_CLASSES_UP_TO
    image = write_image(tmp_path / "a.png", seed=1)
    few = Predictor(make_checkpoint(tmp_path / "few.pt", classes=[f"c{i}" for i in range(7)]), device="cpu")
    many = Predictor(make_checkpoint(tmp_path / "many.pt", classes=[f"c{i}" for i in range(12)]), device="cpu")
    assert len(few.predict([image])[0]["predictions"]) == few.default_topk == 7  # every class, as the command line
    assert len(many.predict_image(Image.open(image))) == many.default_topk == 5
    with pytest.raises(ResnetlabError, match="topk must be a whole number >= 1, got 0"):
        few.predict([image], topk=0)


def test_a_runs_weights_pth_gives_the_runs_own_probabilities(tmp_path: Path) -> None:
    """The run writes preprocess.json beside weights.pth (its dataset mean/std, size, views), so the
    plain weights predict what the run predicts; without it ImageNet's statistics were used."""
    import json

    from resnetlab.cli import main
    from tests.builders import make_image_folder

    data = make_image_folder(tmp_path / "data", classes=("dark", "bright"), per_class={"train": 8, "test": 4})
    run = tmp_path / "run"
    assert main(["train", "--model", "resnet20", "--dataset", "folder", "--data-dir", str(data), "--max-iters", "2",
                 "--batch-size", "4", "--device", "cpu", "--quiet", "--test-time-flip", "--out", str(run)]) == 0
    sidecar = json.loads((run / "preprocess.json").read_text())
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert sidecar["mean"] == ckpt["normalization"]["mean"] and sidecar["input_size"] == [3, 8, 8]
    assert sidecar["pipeline"] == "small" and sidecar["test_views"] == {"flip": True, "shift": 0, "ten_crop": False}
    assert max(sidecar["mean"]) < 0.3  # the data's own statistics, far from ImageNet's
    images = sorted(str(p) for p in (data / "test").rglob("*.png"))

    def probabilities(predictor: Predictor) -> torch.Tensor:
        return torch.tensor([[p["probability"] for p in sorted(r["predictions"], key=lambda p: p["index"])]
                             for r in predictor.predict(images, topk=2)])

    from_run = probabilities(Predictor(run, device="cpu"))
    weights = run / "weights.pth"
    from_weights = probabilities(Predictor.from_weights("resnet20", weights, run / "class_indices.json", device="cpu"))
    assert (from_run - from_weights).abs().max().item() < 1e-6
    given = Predictor.from_weights("resnet20", weights, run / "class_indices.json", device="cpu", mean=sidecar["mean"], std=sidecar["std"])
    assert (from_run - probabilities(given)).abs().max().item() < 1e-6  # --mean/--std, the same numbers
    imagenet = Predictor.from_weights("resnet20", weights, run / "class_indices.json", device="cpu", mean=[0.485, 0.456, 0.406],
                                      std=[0.229, 0.224, 0.225])
    assert (from_run - probabilities(imagenet)).abs().max().item() > 1e-3  # what the old default gave
