"""The one engine that training, evaluation and fine-tuning share."""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def collect_logits(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], *, tta: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``model`` in eval mode over ``batches``: (logits float32 (N, K) on CPU, labels (N,)).

    With ``tta`` the logits are the mean of the image's and its mirror image's.
    """
    was_training = model.training
    model.eval()
    all_logits, all_labels = [], []
    for images, labels in batches:
        logits = model(images).float()
        if tta:
            logits = 0.5 * (logits + model(images.flip(3)).float())
        all_logits.append(logits.cpu())
        all_labels.append(labels.cpu())
    model.train(was_training)
    if not all_logits:
        return torch.empty(0, 0), torch.empty(0, dtype=torch.long)
    return torch.cat(all_logits), torch.cat(all_labels)


def loss_and_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Mean cross-entropy and top-1 accuracy (a fraction in [0, 1])."""
    if len(labels) == 0:
        return {"loss": float("nan"), "acc": float("nan")}
    return {
        "loss": F.cross_entropy(logits, labels).item(),
        "acc": (logits.argmax(1) == labels).float().mean().item(),
    }
