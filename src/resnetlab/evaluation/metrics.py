"""Metrics computed from collected logits: top-k, per-class accuracy, confusion, confident errors.

Everything here takes the ``(logits, labels)`` pair that ``logits.collect_logits`` returns, so
evaluation adds numbers on top of the one evaluation path instead of running its own loop.
``classification_totals`` is the one loss and accuracy of the project: training steps, training's
evaluation and ``eval`` all add up its sums.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def classification_totals(logits: torch.Tensor, labels: torch.Tensor, *, mean_loss: torch.Tensor | None = None) -> torch.Tensor:
    """(loss sum, correct, images) as a float32 (3,) tensor on ``logits``' device: sums that add
    across batches and processes, computed without reading anything to the host.

    ``mean_loss`` is a batch's mean loss as training computed it (label smoothing included);
    without it the loss is the plain cross-entropy."""
    n = len(labels)
    loss_sum = mean_loss.float() * n if mean_loss is not None else F.cross_entropy(logits.float(), labels, reduction="sum")
    correct = (logits.argmax(1) == labels).sum().float()
    return torch.stack([loss_sum, correct, torch.full((), float(n), device=logits.device)])


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
