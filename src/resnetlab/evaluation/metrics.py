"""Metrics computed from collected logits: top-k, per-class accuracy, confusion, confident errors.

Everything here takes the ``(logits, labels)`` pair that ``engine.collect_logits`` returns, so
evaluation adds numbers on top of the one evaluation path instead of running its own loop.
"""

from __future__ import annotations

import torch


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Fraction of rows whose label is among the ``k`` highest logits (k capped at the class count)."""
    if len(labels) == 0:
        return float("nan")
    k = min(k, logits.shape[1])
    top = logits.topk(k, dim=1).indices  # (N, k)
    return (top == labels[:, None]).any(dim=1).float().mean().item()


def confusion_matrix(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K, K) int64 counts: row = true class, column = predicted class."""
    predicted = logits.argmax(1)
    flat = labels * num_classes + predicted
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def per_class_accuracy(confusion: torch.Tensor, classes: list[str]) -> dict[str, float]:
    """Recall of each class (diagonal / row sum); NaN for a class with no examples in the split."""
    totals = confusion.sum(1)
    return {
        name: (confusion[i, i].item() / totals[i].item()) if totals[i] else float("nan")
        for i, name in enumerate(classes)
    }


def most_confident_errors(logits: torch.Tensor, labels: torch.Tensor, count: int) -> list[dict[str, float | int]]:
    """The ``count`` wrong predictions made with the highest probability, most confident first.

    Each entry: {"index": row in the split, "label": true class, "predicted": class, "probability": p}.
    """
    probs = logits.softmax(1)
    confidence, predicted = probs.max(1)
    wrong = (predicted != labels).nonzero().flatten()
    order = wrong[confidence[wrong].argsort(descending=True)][:count]
    return [
        {"index": int(i), "label": int(labels[i]), "predicted": int(predicted[i]), "probability": float(confidence[i])}
        for i in order
    ]
