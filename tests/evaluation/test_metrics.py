"""Metrics from logits, on cases small enough to check by hand."""

from __future__ import annotations

import math

import torch

from resnetlab.evaluation.metrics import confusion_matrix, most_confident_errors, per_class_accuracy, topk_accuracy

# 4 images, 3 classes. Predictions: 0 (right), 2 (wrong, true 1), 1 (right), 0 (wrong, true 2)
LOGITS = torch.tensor([[3.0, 1.0, 0.0], [0.0, 1.0, 2.0], [0.0, 5.0, 1.0], [9.0, 0.0, 1.0]])
LABELS = torch.tensor([0, 1, 1, 2])


def test_topk_accuracy() -> None:
    assert topk_accuracy(LOGITS, LABELS, 1) == 0.5
    assert topk_accuracy(LOGITS, LABELS, 2) == 1.0  # both mistakes have the label second
    assert topk_accuracy(LOGITS, LABELS, 5) == 1.0  # k capped at the class count
    assert math.isnan(topk_accuracy(LOGITS[:0], LABELS[:0], 1))


def test_confusion_and_per_class() -> None:
    cm = confusion_matrix(LOGITS, LABELS, 3)
    assert cm.tolist() == [[1, 0, 0], [0, 1, 1], [1, 0, 0]]  # rows true, columns predicted
    acc = per_class_accuracy(cm, ["a", "b", "c"])
    assert acc == {"a": 1.0, "b": 0.5, "c": 0.0}
    assert math.isnan(per_class_accuracy(confusion_matrix(LOGITS[:1], LABELS[:1], 3), ["a", "b", "c"])["b"])


def test_most_confident_errors_first() -> None:
    errors = most_confident_errors(LOGITS, LABELS, 5)
    assert [e["index"] for e in errors] == [3, 1]  # softmax 0.9995 beats 0.665
    assert errors[0]["label"] == 2 and errors[0]["predicted"] == 0
    assert errors[0]["probability"] == torch.softmax(LOGITS[3], 0).max().item()
    assert len(most_confident_errors(LOGITS, LABELS, 1)) == 1
