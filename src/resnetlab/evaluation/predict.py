"""``Predictor``: class probabilities for image files, with the checkpoint's own preprocessing."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from resnetlab.evaluation.preprocess import checkpoint_transform, find_images, load_batch
from resnetlab.training.checkpoint import load_checkpoint, model_from_checkpoint


class Predictor:
    """A trained model ready for inference: ``Predictor("run/").predict(["cat.jpg", "photos/"])``.

    ``checkpoint`` is a checkpoint file, a run folder (its best.pt, else last.pt) or an already
    loaded checkpoint dict.
    """

    def __init__(self, checkpoint: str | Path | dict[str, Any], *, device: str | torch.device = "cpu", batch_size: int = 64) -> None:
        self.checkpoint = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
        self.classes: list[str] = list(self.checkpoint["classes"])
        self.transform = checkpoint_transform(self.checkpoint)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.model = model_from_checkpoint(self.checkpoint).to(self.device).eval()

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Preprocessed float images (N, C, H, W) -> softmax probabilities (N, K) on the CPU."""
        return self.model(images.to(self.device)).float().softmax(1).cpu()

    def predict(self, paths: Iterable[str | Path], topk: int = 5) -> list[dict[str, Any]]:
        """For every image in ``paths`` (files or folders): its top-``topk`` classes, highest first.

        Returns ``[{"path", "predictions": [{"class", "index", "probability"}, ...]}, ...]``.
        """
        files = find_images(paths)
        k = max(1, min(topk, len(self.classes)))
        results: list[dict[str, Any]] = []
        for start in range(0, len(files), self.batch_size):
            chunk = files[start : start + self.batch_size]
            probs = self.probabilities(load_batch(chunk, self.transform))
            top = probs.topk(k, dim=1)
            for path, values, indices in zip(chunk, top.values.tolist(), top.indices.tolist()):
                predictions = [{"class": self.classes[i], "index": i, "probability": p} for p, i in zip(values, indices)]
                results.append({"path": str(path), "predictions": predictions})
        return results
