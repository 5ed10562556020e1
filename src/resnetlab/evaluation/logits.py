"""One evaluation over a loader, for training, ``eval``, ``predict`` and reports alike: the logits
of every image through the test-time views, then loss and accuracy."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch
from torch import nn

from resnetlab.errors import ResnetlabError
from resnetlab.evaluation.metrics import classification_totals
from resnetlab.evaluation.view_averaging import ONE_VIEW, TEN_CROP_NEEDS_PHOTOS, TestViews, view_averaged_logits
from resnetlab.progress import progress_bar
from resnetlab.stop_signals import StopRequest

if TYPE_CHECKING:
    from resnetlab.data import TensorLoader
    from resnetlab.data.photo_loader import PhotoLoader


class EvaluationStopped(Exception):
    """A signal asked to stop during an evaluation pass, which was abandoned between two batches."""

    def __init__(self, signal_name: str) -> None:
        self.signal_name = signal_name
        super().__init__(f"evaluation interrupted by {signal_name}")


@torch.inference_mode()
def collect_logits(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], views: TestViews = ONE_VIEW, *,
    fill: torch.Tensor | float = 0.0, stop: StopRequest | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``model`` in eval mode over ``batches``: (logits float32 (N, K) on CPU, labels (N,)).

    Each image's logits are the mean over its ``views`` (see ``view_averaged_logits``): with
    ``flip`` its mirror image's too; ``shift`` > 0 adds the views translated by up to that many
    pixels, their uncovered border set to ``fill`` (a ``TensorLoader`` gives it as ``padding_value``).
    ``stop`` requested before a batch raises ``EvaluationStopped``: a pass of many views over a
    big split takes minutes, and Ctrl-C should not wait for its end.
    """
    was_training = model.training
    model.eval()
    all_logits, all_labels = [], []
    try:
        for images, labels in batches:
            if stop is not None and stop.requested:
                raise EvaluationStopped(stop.signal_name)
            logits = view_averaged_logits(model, images, views, fill=fill)
            all_logits.append(logits.cpu())
            all_labels.append(labels.cpu())
    finally:
        model.train(was_training)
    if not all_logits:
        return torch.empty(0, 0), torch.empty(0, dtype=torch.long)
    return torch.cat(all_logits), torch.cat(all_labels)


def loader_logits(model: nn.Module, loader: TensorLoader | PhotoLoader, views: TestViews = ONE_VIEW, *,
                  progress: str | None = None, stop: StopRequest | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``collect_logits`` over every batch of an evaluation ``loader``, moved views' borders set to
    its ``padding_value`` (the black of training's crops).

    With ``views.ten_crop`` (photo loaders) each image is the mean of its ten crops instead.
    With ``progress``, a bar so labelled (and with the view count) on a terminal: 18 views of
    10,000 images take over a minute on a small CPU, which should not pass in silence. ``stop``:
    as ``collect_logits``.
    """
    if views.ten_crop:
        if not hasattr(loader, "with_ten_crop"):
            raise ResnetlabError(TEN_CROP_NEEDS_PHOTOS)
        loader = loader.with_ten_crop()  # (N, 10, C, S, S) batches: their crops replace the other views
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]] = loader.batches(0)
    if progress:
        count = views.count
        batches = progress_bar(batches, total=len(loader), desc=f"{progress} ({count} view{'s' if count > 1 else ''})",
                       unit="batch", leave=False, dynamic_ncols=True, disable=None)  # None: no bar off a terminal
    return collect_logits(model, batches, views, fill=loader.padding_value, stop=stop)


def loss_and_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Mean cross-entropy and top-1 accuracy (a fraction in [0, 1]) of collected logits."""
    if len(labels) == 0:
        return {"loss": float("nan"), "acc": float("nan")}
    loss_sum, correct, n = classification_totals(logits, labels).tolist()
    return {"loss": loss_sum / n, "acc": correct / n}


def evaluation_batch_size(pipeline: str, train_batch: int | None, device: torch.device) -> int:
    """The batch of every evaluation pass, training's own and ``eval``'s alike (so their logits agree):
    small images in large batches, since inference keeps no activations (1024 on a GPU, 256 on a
    CPU, at least training's batch); photos in training's batch (ten crops make each ten passes)."""
    if pipeline == "small":
        return max(1024 if device.type == "cuda" else 256, train_batch or 0)
    return train_batch or 32
