"""Real data: a short CIFAR-10 (JPEG copy) run, evaluated, fine-tuned on 5 classes, used for prediction."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from resnetlab.checkpoint import load_checkpoint
from resnetlab.cli import main
from resnetlab.evaluation import Predictor, evaluate
from tests.builders import FINETUNE_CLASSES, FINETUNE_TEST, PRETRAIN_TEST

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def test_eval_json_of_a_run_folder_matches_its_summary(source_run: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["eval", str(source_run), "--json", "--device", "cpu"]) == 0
    printed = json.loads(capsys.readouterr().out)
    summary = json.loads((source_run / "summary.json").read_text())
    assert set(printed) == {"top1", "top5", "loss", "n", "per_class", "test_views", "views", "precision"}
    assert printed["test_views"] == {"flip": False, "shift": 0, "ten_crop": False}  # as the paper-recipe run did
    assert printed["views"] == 1
    assert printed["precision"] == summary["precision"] == "fp32"  # auto on the suite's CPU without native bf16
    assert printed["n"] == 10 * PRETRAIN_TEST
    assert printed["top1"] == summary["final"]["test_acc"]  # the same evaluation path, not a near-miss
    assert printed["loss"] == pytest.approx(summary["final"]["test_loss"], rel=1e-5)
    assert list(printed["per_class"]) == CIFAR10_CLASSES
    # per-class accuracies are recalls over equal-sized classes: their mean is the top-1
    assert sum(printed["per_class"].values()) / 10 == pytest.approx(printed["top1"], abs=1e-9)
    assert printed["top1"] <= printed["top5"] <= 1 and printed["top5"] > 0.5  # top-5 of 10 classes, trained


def test_eval_writes_confusion_matrix_and_mistakes(source_run: Path, tmp_path: Path) -> None:
    result = evaluate(source_run, out=tmp_path, device="cpu")
    with open(result["files"]["confusion_csv"]) as f:
        rows = list(csv.reader(f))
    assert rows[0][1:] == CIFAR10_CLASSES and [r[0] for r in rows[1:]] == CIFAR10_CLASSES
    counts = torch.tensor([[int(x) for x in r[1:]] for r in rows[1:]])
    assert counts.sum() == result["n"] and counts.sum(1).tolist() == [PRETRAIN_TEST] * 10
    assert counts.trace().item() / result["n"] == pytest.approx(result["top1"])
    for key in ("confusion_png", "mistakes_png"):
        assert Path(result["files"][key]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    probs = [m["probability"] for m in result["mistakes"]]
    assert probs == sorted(probs, reverse=True) and all(m["label"] != m["predicted"] for m in result["mistakes"])
    flipped = evaluate(source_run, out=tmp_path, flip=True, device="cpu")
    assert flipped["test_views"]["flip"] and flipped["n"] == result["n"] and flipped["loss"] != result["loss"]
    shifted = evaluate(source_run, out=tmp_path, flip=True, shift=1, device="cpu")
    assert shifted["test_views"]["shift"] == 1 and shifted["views"] == 18
    assert shifted["n"] == result["n"] and shifted["loss"] != flipped["loss"]


def test_finetune_reports_weights_and_learns_the_five_new_classes(finetuned_run: tuple[Path, dict], source_run: Path) -> None:
    run, summary = finetuned_run
    assert summary["recipe"] == "fine-tune" and summary["classes"] == sorted(FINETUNE_CLASSES)
    assert summary["pretrained"]["new"] == ["fc.weight", "fc.bias"]  # 10 -> 5 classes: a new classifier
    source = load_checkpoint(source_run / "checkpoints" / "last.pt")
    backbone = [k for k in source["state_dict"] if not k.startswith("fc.") and not k.endswith("num_batches_tracked")]
    assert sorted(summary["pretrained"]["loaded"]) == sorted(backbone)
    tuned = load_checkpoint(run)
    assert tuned["config"]["optimizer"] == "adam" and tuned["config"]["init_from"].endswith("last.pt")
    result = evaluate(run, device="cpu")
    assert result["files"] == {} and not list(run.glob("eval-*"))  # no out: no file written into the run
    assert result["n"] == 5 * FINETUNE_TEST
    assert result["top1"] == summary["final"]["test_acc"]
    assert result["top1"] > 0.2 + 0.1, f"fine-tuned accuracy {result['top1']:.3f} is not clearly above chance (0.2)"


def test_predict_only_knows_the_five_classes(finetuned_run: tuple[Path, dict], cifar_subsets: dict[str, Path],
                                             capsys: pytest.CaptureFixture) -> None:
    run, _ = finetuned_run
    folder = cifar_subsets["finetune"] / "test" / "ship"
    assert main(["predict", str(run), str(folder), "--topk", "3", "--json", "--device", "cpu"]) == 0
    items = json.loads(capsys.readouterr().out)
    assert len(items) == FINETUNE_TEST and items[0]["path"].endswith(".jpg")
    for item in items:
        predictions = item["predictions"]
        assert len(predictions) == 3 and {p["class"] for p in predictions} <= set(FINETUNE_CLASSES)
        assert [p["probability"] for p in predictions] == sorted((p["probability"] for p in predictions), reverse=True)
        assert all(sorted(FINETUNE_CLASSES)[p["index"]] == p["class"] for p in predictions)


def test_predictor_agrees_with_evaluate_on_the_same_files(finetuned_run: tuple[Path, dict], cifar_subsets: dict[str, Path]) -> None:
    """File preprocessing (decode, normalise with the checkpoint's statistics) matches the training data path."""
    run, _ = finetuned_run
    predictor = Predictor(run, device="cpu")
    classes = predictor.classes
    results = predictor.predict([cifar_subsets["finetune"] / "test"], topk=1)
    truth = [classes.index(Path(r["path"]).parent.name) for r in results]
    accuracy = sum(r["predictions"][0]["index"] == t for r, t in zip(results, truth)) / len(results)
    assert accuracy > 0.2 + 0.1  # predicting image files beats chance among the five classes too
    assert accuracy == pytest.approx(evaluate(run, flip=False, device="cpu")["top1"], abs=0.02)
    viewed = Predictor(run, flip=True, shift=1, device="cpu").predict([cifar_subsets["finetune"] / "test"], topk=1)
    viewed_accuracy = sum(r["predictions"][0]["index"] == t for r, t in zip(viewed, truth)) / len(viewed)
    assert viewed_accuracy == pytest.approx(evaluate(run, flip=True, shift=1, device="cpu")["top1"], abs=0.02)
