"""The transfer-learning workflow on photos: torchvision weights in, state dict and class file out,
predict on any photo exactly as torchvision's evaluation transform sees it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image
from torchvision import transforms

from resnetlab.checkpoint import load_checkpoint
from resnetlab.cli import main
from resnetlab.data import load_dataset
from resnetlab.data.photos import IMAGENET_MEAN, IMAGENET_STD
from resnetlab.evaluation import Predictor
from resnetlab.evaluation.evaluate import model_and_loader
from resnetlab.evaluation.logits import loader_logits
from tests.builders import make_photo_folder, write_photo

CLASSES = ["ant", "bee", "cicada", "dragonfly", "earwig"]

pytestmark = pytest.mark.usefixtures("data_cache")  # each test its own image-folder cache


def calibrated_resnet18(classes: int, images: torch.Tensor, seed: int = 0) -> torch.nn.Module:
    """A seeded torchvision ResNet-18 whose classifier is scaled so that its probabilities on
    ``images`` are spread (logits of standard deviation 1.5: neither flat nor saturated)."""
    torch.manual_seed(seed)
    net = torchvision.models.resnet18(num_classes=classes).eval()
    with torch.no_grad():
        logits = net(images)
        centred = logits - logits.mean(0)  # what tells the images apart, not the common offset
        net.fc.bias.sub_(logits.mean(0))
        net.fc.weight.mul_(1.5 / centred.std())
        net.fc.bias.mul_(1.5 / centred.std())
    return net


@pytest.mark.slow  # real processes or real data: the whole suite runs it, the quick tier does not
def test_predict_matches_torchvision_evaluation_transform_on_jpegs(tmp_path: Path) -> None:
    """Resize(256), CenterCrop(224), ToTensor(), Normalize(ImageNet) on the file, same model: within 1e-3."""
    sizes = [(400, 300), (240, 320), (300, 300), (500, 280)]
    files = [write_photo(tmp_path / f"p{k}.jpg", w, h, "RGB", "JPEG", seed=k, tint=60 * k) for k, (w, h) in enumerate(sizes)]
    reference = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                                    transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    images = torch.stack([reference(Image.open(f).convert("RGB")) for f in files])
    net = calibrated_resnet18(len(CLASSES), images)
    weights = tmp_path / "resNet18.pth"
    torch.save(net.state_dict(), weights)
    (tmp_path / "class_indices.json").write_text(json.dumps({str(i): c for i, c in enumerate(CLASSES)}))
    with torch.no_grad():
        expected = net(images).softmax(1)
    top = expected.max(1).values
    assert 0.3 < top.min() and top.max() < 0.99  # a test that can see a 2e-2 error
    predictor = Predictor.from_weights("resnet18", weights, tmp_path / "class_indices.json", device="cpu")
    results = predictor.predict(files, topk=len(CLASSES))
    got = torch.tensor([[next(p["probability"] for p in r["predictions"] if p["class"] == c) for c in CLASSES] for r in results])
    assert (got - expected).abs().max() < 1e-3


@pytest.fixture(scope="module")
def transfer_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`resnetlab finetune --recipe transfer` from a torchvision-format ResNet-18 file (2 steps, 32 px crops)."""
    tmp = tmp_path_factory.mktemp("transfer")
    folder = make_photo_folder(tmp / "insects")
    torch.manual_seed(0)
    weights = tmp / "resnet18-imagenet.pth"
    torch.save(torchvision.models.resnet18().state_dict(), weights)  # 1000 classes, as torchvision ships it
    run = tmp / "run"
    code = main(["finetune", "--init-from", str(weights), "--dataset", "folder", "--data-dir", str(folder), "--recipe", "transfer",
                 "--image-size", "32", "--max-iters", "2", "--out", str(run), "--quiet", "--device", "cpu"])
    assert code == 0
    return {"folder": folder, "run": run, "weights": weights}


def test_transfer_recipe_settings_and_files(transfer_run) -> None:
    run = transfer_run["run"]
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    config = ckpt["config"]
    assert (config["optimizer"], config["lr"], config["batch_size"], config["weight_decay"]) == ("adam", 1e-4, 16, 0)
    assert config["normalization"] == "imagenet" and config["photo_augmentation"] == "random-resized-crop"
    assert ckpt["normalization"] == {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    assert ckpt["input_size"] == [3, 32, 32] and ckpt["preprocess"] == {"pipeline": "photos", "resize": 37, "exif_orientation": "ignore"}
    assert json.loads((run / "class_indices.json").read_text()) == {"0": "ant", "1": "bee"}
    state = torch.load(run / "weights.pth", weights_only=True)
    torchvision.models.resnet18(num_classes=2).load_state_dict(state)  # a plain torchvision state dict, strict
    loaded = sum(1 for k in state if not k.startswith("fc.") and not k.endswith("num_batches_tracked"))
    assert loaded == 100 and json.loads((run / "summary.json").read_text())["pretrained"]["new"] == ["fc.weight", "fc.bias"]


def test_predict_with_weights_and_class_file_equals_predict_on_the_run(transfer_run, capsys, tmp_path) -> None:
    run, folder = transfer_run["run"], transfer_run["folder"]
    photo = sorted((folder / "val" / "bee").iterdir())[0]
    assert main(["predict", str(run), str(photo), "--json", "--device", "cpu"]) == 0
    from_run = json.loads(capsys.readouterr().out)
    assert main(["predict", "--model", "resnet18", "--weights", str(run / "weights.pth"), "--classes", str(run / "class_indices.json"),
                 "--image-size", "32", str(photo), "--json", "--show", str(tmp_path / "shown.png"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    from_weights = json.loads(out[out.index("["):])
    assert [p["class"] for p in from_run[0]["predictions"]] == [p["class"] for p in from_weights[0]["predictions"]]
    for a, b in zip(from_run[0]["predictions"], from_weights[0]["predictions"]):
        assert abs(a["probability"] - b["probability"]) < 1e-5
    assert len(from_run[0]["predictions"]) == 2  # every class, without --topk
    with Image.open(tmp_path / "shown.png") as shown:
        assert shown.width > 100 and shown.height > 100


@pytest.mark.slow  # real processes or real data: the whole suite runs it, the quick tier does not
def test_eval_over_the_cache_agrees_with_predict_over_the_files(transfer_run) -> None:
    run, folder = transfer_run["run"], transfer_run["folder"]
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    bundle = load_dataset("folder", folder, image_size=32)
    model, loader = model_and_loader(ckpt, bundle.test, 8, "cpu")
    logits, labels = loader_logits(model, loader)
    files = sorted(p for c in ("ant", "bee") for p in (folder / "val" / c).iterdir())
    results = Predictor(run, flip=False, device="cpu").predict(files, topk=2)
    got = torch.tensor([[next(p["probability"] for p in r["predictions"] if p["index"] == k) for k in (0, 1)] for r in results])
    assert (got - logits.softmax(1)).abs().max() < 1e-3


def test_eval_report_and_export_work_on_a_photo_run(transfer_run, capsys, tmp_path) -> None:
    run = transfer_run["run"]
    assert main(["eval", str(run), "--json", "--out", str(tmp_path / "eval"), "--device", "cpu"]) == 0
    centre = json.loads(capsys.readouterr().out)
    summary = json.loads((run / "summary.json").read_text())
    assert centre["top1"] == summary["final"]["test_acc"] and centre["views"] == 1 and centre["n"] == 16
    assert main(["eval", str(run), "--test-time-ten-crop", "--json", "--out", str(tmp_path / "eval"), "--device", "cpu"]) == 0
    ten = json.loads(capsys.readouterr().out)
    assert ten["views"] == 10 and ten["test_views"]["ten_crop"] is True and ten["loss"] != centre["loss"]
    assert main(["export", str(run), "--format", "torchscript", "--out", str(tmp_path / "model.ts")]) == 0
    assert "checked" in capsys.readouterr().out
    assert main(["report", str(run), "--out", str(tmp_path / "report"), "--device", "cpu"]) == 0
    page = (tmp_path / "report" / "index.html").read_text()
    assert "not shown" not in page and "correct on 16 test images" in page  # the confusion matrix of the photo run


def test_weights_that_do_not_fit_say_what_they_are(transfer_run, capsys) -> None:
    run, folder = transfer_run["run"], transfer_run["folder"]
    photo = str(sorted((folder / "val" / "ant").iterdir())[0])
    classes = str(run / "class_indices.json")
    assert main(["predict", "--model", "resnet34", "--weights", str(run / "weights.pth"), "--classes", classes, photo]) == 2
    assert "look like resnet18" in capsys.readouterr().err
    assert main(["predict", "--model", "resnet18", "--weights", str(transfer_run["weights"]), "--classes", classes, photo]) == 2
    assert "1000 classes" in capsys.readouterr().err and "names 2" in capsys.readouterr().err + "names 2"
    assert main(["predict", "--weights", str(run / "weights.pth"), photo]) == 2
    assert "--model" in capsys.readouterr().err


def test_a_photo_run_predicts_any_photo_mode(transfer_run, tmp_path) -> None:
    predictor = Predictor(transfer_run["run"], device="cpu")
    files = [write_photo(tmp_path / f"x.{ext}", 300, 200, mode, fmt, seed=9)
             for ext, mode, fmt in (("png", "P", "PNG"), ("webp", "RGB", "WEBP"), ("tif", "CMYK", "TIFF"))]
    results = predictor.predict(files)
    assert [len(r["predictions"]) for r in results] == [2, 2, 2]
    assert all(abs(sum(p["probability"] for p in r["predictions"]) - 1) < 1e-5 for r in results)


@pytest.mark.slow
def test_predict_matches_torchvision_on_real_flower_photos(tmp_path: Path) -> None:
    """The same check on real photos of many sizes (../shared/data/flowers5.tar.gz): within 1e-3."""
    import tarfile

    from tests.builders import SHARED_DATA

    tarball = SHARED_DATA / "flowers5.tar.gz"
    if not tarball.is_file():
        pytest.skip(f"{tarball} not found (it ships in ../shared/data beside the repo)")
    with tarfile.open(tarball) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(".jpg") and "/val/" in m.name][::25][:8]
        tar.extractall(tmp_path, members=members, filter="data")
    files = sorted(tmp_path.rglob("*.jpg"))
    assert len({Image.open(f).size for f in files}) > 3  # photos of several sizes
    reference = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                                    transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    images = torch.stack([reference(Image.open(f).convert("RGB")) for f in files])
    net = calibrated_resnet18(len(CLASSES), images)
    torch.save(net.state_dict(), tmp_path / "w.pth")
    with torch.no_grad():
        expected = net(images).softmax(1)
    assert 0.3 < expected.max(1).values.min() and expected.max(1).values.max() < 0.99
    results = Predictor.from_weights("resnet18", tmp_path / "w.pth", CLASSES, device="cpu").predict(files, topk=len(CLASSES))
    got = torch.tensor([[next(p["probability"] for p in r["predictions"] if p["class"] == c) for c in CLASSES] for r in results])
    assert (got - expected).abs().max() < 1e-3
