"""predict --explain: the class activation maps are the grad-cam library's own, on predict's input."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

from resnetlab.checkpoint import load_checkpoint  # noqa: E402
from resnetlab.cli import main  # noqa: E402
from resnetlab.evaluation import Predictor  # noqa: E402
from resnetlab.evaluation.explain import explain_files, target_layer  # noqa: E402
from resnetlab.evaluation.preprocess import open_rgb  # noqa: E402
from resnetlab.models import create_model  # noqa: E402
from tests.builders import make_checkpoint, write_photo  # noqa: E402

CASES = {  # model, input size, preprocessing, the layer the library's README would name
    "resnet20": ((3, 16, 16), {}, lambda m: m.layer3[-1]),
    "resnet34": ((3, 64, 64), {"pipeline": "photos", "resize": 73}, lambda m: m.layer4[-1]),  # layer4: 2x2
    "plain20": ((3, 16, 16), {}, lambda m: m.layer3[-1]),
}


def checkpoint(tmp_path: Path, name: str) -> Path:
    size, preprocess, _ = CASES[name]
    return make_checkpoint(tmp_path / f"{name}.pt", model=name, input_size=size, preprocess=preprocess, seed=1,
                           classes=["daisy", "rose", "tulip", "iris"])


def photos(tmp_path: Path, n: int = 2) -> list[Path]:
    return [write_photo(tmp_path / f"photo{i}.jpg", 90 + 9 * i, 80, "RGB", "JPEG", seed=i) for i in range(n)]


def library_map(path: Path, image: Image.Image, predictor: Predictor, target: int, name: str, cam=GradCAM) -> np.ndarray:
    """The map computed directly with the library, as its README does: a plain model, its layer, one target."""
    ckpt = load_checkpoint(path)
    model = create_model(name, num_classes=4)
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    with cam(model=model, target_layers=[CASES[name][2](model)]) as method:
        return method(input_tensor=predictor.transform(image).unsqueeze(0), targets=[ClassifierOutputTarget(target)])[0]


@pytest.mark.parametrize("name", ["resnet20", "resnet34"])
def test_the_map_is_the_librarys_on_predicts_input(tmp_path: Path, name: str) -> None:
    path = checkpoint(tmp_path, name)
    predictor = Predictor(path, device="cpu")
    results = predictor.predict(photos(tmp_path), topk=3, explain=tmp_path / "explain.png")
    assert Image.open(tmp_path / "explain.png").size[0] > 300
    for item, explanation in zip(results, explain_files(predictor, results)):
        top = item["predictions"][0]["index"]
        assert item["explained"] == explanation.explained == predictor.classes[top]
        expected = library_map(path, open_rgb(item["path"]), predictor, top, name)
        assert explanation.heat.shape == expected.shape == tuple(load_checkpoint(path)["input_size"][1:])
        assert expected.max() > 0.5 and expected.std() > 0.01  # a map with something in it, not all zeros
        np.testing.assert_allclose(explanation.heat, expected, atol=1e-5)


def test_another_class_and_method_and_a_plain_net(tmp_path: Path) -> None:
    path = checkpoint(tmp_path, "plain20")
    predictor = Predictor(path, device="cpu")
    [photo] = photos(tmp_path, 1)
    results = predictor.predict([photo], explain=tmp_path / "x.png", explain_class="iris", cam_method="gradcam++")
    [explanation] = explain_files(predictor, results, class_name="iris", method="gradcam++")
    assert results[0]["explained"] == "iris"
    assert target_layer(predictor.model, "plain20") is predictor.model.layer3[-1]
    expected = library_map(path, open_rgb(photo), predictor, 3, "plain20", cam=GradCAMPlusPlus)
    np.testing.assert_allclose(explanation.heat, expected, atol=1e-5)


def test_cli_explain_writes_the_figure_and_refuses_bad_requests(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = checkpoint(tmp_path, "resnet20")
    [photo] = photos(tmp_path, 1)
    out = tmp_path / "why.png"
    assert main(["predict", str(path), str(photo), "--explain", str(out), "--device", "cpu"]) == 0
    assert out.is_file() and f"wrote {out}" in capsys.readouterr().out
    for argv, message in [
        (["--explain", str(out)], "already exists"),
        (["--explain", str(tmp_path / "b.png"), "--explain-class", "oak"], "--explain-class oak names no class of this model"),
        (["--explain", str(photo.with_suffix(".jpg"))], "one of the images"),
        (["--explain-class", "rose"], "go with --explain"),
    ]:
        assert main(["predict", str(path), str(photo), *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1


def test_without_grad_cam_one_line_names_the_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture) -> None:
    path = checkpoint(tmp_path, "resnet20")
    [photo] = photos(tmp_path, 1)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pytorch_grad_cam" else real(name, *a))
    assert main(["predict", str(path), str(photo), "--explain", str(tmp_path / "x.png")]) == 2
    assert "pip install 'resnetlab[explain]'" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_the_map_follows_the_precision_asked(tmp_path: Path) -> None:
    path = checkpoint(tmp_path, "resnet20")
    [photo] = photos(tmp_path, 1)
    fp32 = Predictor(path, device="cpu")
    bf16 = Predictor(path, device="cpu", precision="bf16")
    maps = [explain_files(p, p.predict([photo]))[0].heat for p in (fp32, bf16)]
    assert not np.array_equal(maps[0], maps[1]) and np.abs(maps[0] - maps[1]).max() < 0.2


def test_the_command_line_offers_the_methods_explain_knows() -> None:
    from resnetlab.cli.predict_cmd import CAM_METHODS
    from resnetlab.evaluation.explain import CAM_METHODS as KNOWN

    assert list(CAM_METHODS) == list(KNOWN)
