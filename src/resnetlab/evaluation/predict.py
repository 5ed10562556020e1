"""``Predictor``: class probabilities for image files (or images in memory), with the checkpoint's
own preprocessing and test-time views."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from resnetlab.checkpoint import load_checkpoint, model_from_checkpoint
from resnetlab.data.decode import rgb_image
from resnetlab.data.loader import normalised_black
from resnetlab.data.orientation import check_exif_orientation, oriented
from resnetlab.devices import memory_format, resolve_device
from resnetlab.errors import ResnetlabError, option
from resnetlab.evaluation.preprocess import checkpoint_exif_orientation, checkpoint_transform, find_images, load_batch
from resnetlab.evaluation.view_averaging import TEN_CROP_VIEWS, TestViews, view_averaged_logits
from resnetlab.evaluation.weights import weights_checkpoint
from resnetlab.models.complexity import check_activation_memory, check_min_image_size
from resnetlab.precision import autocast, evaluation_precision

ALL_CLASSES_UP_TO = 10  # without topk, every class is listed when there are at most this many


class Predictor:
    """A trained model ready for inference: ``Predictor("run/").predict(["cat.jpg", "photos/"])``.

    ``checkpoint`` is a checkpoint file, a run folder (its final model, checkpoints/last.pt) or an already
    loaded checkpoint dict. Each image is seen through the test-time views the run evaluated
    itself with (``self.views``; ``flip``, ``shift`` and ``ten_crop`` replace its settings when
    given, as in ``evaluate``).

    ``precision`` is fp32 unless asked otherwise ("bf16", "fp16", "auto"; None: the precision the
    run trained and evaluated in, as ``evaluate`` uses): a photo's probabilities belong to the
    weights, so a run folder and its weights.pth (``from_weights``, which knows no run) give the
    same numbers, on every machine. A photo stored sideways
    with an EXIF orientation tag is read by the run's rule (``exif_orientation`` replaces it).
    """

    def __init__(self, checkpoint: str | Path | dict[str, Any], *, device: str | torch.device = "auto", batch_size: int = 64,
                 flip: bool | None = None, shift: int | None = None, ten_crop: bool | None = None,
                 precision: str | None = "fp32", exif_orientation: str | None = None) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ResnetlabError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
        self.checkpoint = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
        self.source = "the checkpoint" if isinstance(checkpoint, dict) else str(checkpoint)
        self.classes: list[str] = list(self.checkpoint["classes"])
        spec, (_, height, width) = self.checkpoint["model"], self.checkpoint["input_size"]
        check_min_image_size(spec["name"], min(height, width), f"the input size {height}x{width} of {self.source}", spec.get("options"))
        config = self.checkpoint.get("config") or {}
        self.views = TestViews.from_checkpoint(self.checkpoint).overridden(flip=flip, shift=shift, ten_crop=ten_crop)
        self.transform = checkpoint_transform(self.checkpoint, self.views)
        self.exif_orientation = check_exif_orientation(exif_orientation or checkpoint_exif_orientation(self.checkpoint))
        self.device = resolve_device(device)
        self.precision = evaluation_precision(config, precision, self.device)
        self.batch_size = batch_size
        self.views_per_pass = TEN_CROP_VIEWS if self.views.ten_crop else 1  # ten crops pass as one batch ten times as big
        self._fits: set[int] = set()
        # the memory layout of the run's training, as ``evaluate`` uses: the same logits to the last bit
        self.layout = memory_format(self.device, bool((self.checkpoint.get("config") or {}).get("channels_last", False)))
        self.model = model_from_checkpoint(self.checkpoint).to(self.device, memory_format=self.layout).eval()
        normalization = self.checkpoint["normalization"]
        self.fill = normalised_black(normalization["mean"], normalization["std"]).to(self.device)  # as training's crop borders

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Preprocessed float images (N, C, H, W) -> softmax probabilities (N, K) on the CPU."""
        images = images.to(self.device).contiguous(memory_format=self.layout)
        with autocast(self.device, self.precision):
            logits = view_averaged_logits(self.model, images, self.views, fill=self.fill)
        return logits.softmax(1).cpu()

    @property
    def default_topk(self) -> int:
        """Classes per image when ``topk`` is not given: every class up to ``ALL_CLASSES_UP_TO``, else 5
        (the command line's default too)."""
        return len(self.classes) if len(self.classes) <= ALL_CLASSES_UP_TO else 5

    def predict(self, paths: Iterable[str | Path], topk: int | None = None, *, explain: str | Path | None = None,
                explain_class: str | None = None, cam_method: str = "gradcam", overwrite: bool = False) -> list[dict[str, Any]]:
        """For every image in ``paths`` (files or folders): its top-``topk`` classes (None:
        ``default_topk``), highest first.

        Returns ``[{"path", "predictions": [{"class", "index", "probability"}, ...]}, ...]``. With
        ``explain`` (a figure file: .png, .pdf...), also writes each photo with the class activation
        map of its top class (or ``explain_class``) by ``cam_method`` beside its top classes
        (``evaluation/explain.py``; each result then names its ``"explained"`` class); an existing
        figure is replaced only with ``overwrite``.
        """
        topk = self._topk(topk)
        files = find_images(paths)
        if explain is not None:
            from resnetlab.evaluation.explain import check_explain_request

            check_explain_request(explain, files, self.classes, explain_class, cam_method, overwrite)
        self.check_memory(min(self.batch_size, len(files)))
        results: list[dict[str, Any]] = []
        for start in range(0, len(files), self.batch_size):
            chunk = files[start : start + self.batch_size]
            ranked = self._ranked(self.probabilities(load_batch(chunk, self.transform, self.exif_orientation)), topk)
            results.extend({"path": str(path), "predictions": predictions} for path, predictions in zip(chunk, ranked))
        if explain is not None:
            from resnetlab.evaluation.explain import explain_files, plot_explanations

            explanations = explain_files(self, results, class_name=explain_class, method=cam_method)
            plot_explanations(explanations, explain, method=cam_method, overwrite=overwrite)
            for item, explanation in zip(results, explanations):
                item["explained"] = explanation.explained
        return results

    def predict_image(self, image: Image.Image, topk: int | None = None) -> list[dict[str, Any]]:
        """The top-``topk`` classes of an image already in memory (a notebook, a web request):
        ``[{"class", "index", "probability"}, ...]``, highest first."""
        if not isinstance(image, Image.Image):
            raise ResnetlabError(f"predict_image takes a PIL image, got {type(image).__name__}: use predict(paths) for files")
        topk = self._topk(topk)
        self.check_memory(1)
        return self._ranked(self.probabilities(self.transform(rgb_image(oriented(image, self.exif_orientation))).unsqueeze(0)), topk)[0]

    def check_memory(self, images: int) -> None:
        """Refuse a batch of ``images`` whose forward pass (every layer's output, not only the input)
        would not fit in the device's memory, before it is allocated; each size is checked once."""
        if images in self._fits:
            return
        spec = self.checkpoint["model"]
        check_activation_memory(spec["name"], spec.get("options"), tuple(self.checkpoint["input_size"]), images * self.views_per_pass,
                                self.device, f"predicting with {self.source}",
                                f"lower {option('batch_size')}, or predict on a bigger machine",
                                num_classes=spec["num_classes"])
        self._fits.add(images)

    @classmethod
    def from_weights(cls, model: str, weights: str | Path, classes: str | Path | list[str], *, image_size: int | None = None,
                     mean: Sequence[float] | None = None, std: Sequence[float] | None = None, **options: Any) -> Predictor:
        """A predictor from a plain ``state_dict()`` file and a ``class_indices.json`` (or class names),
        as the transfer-learning write-ups save them: photos resized to ``image_size * 256 / 224``,
        centre-cropped to ``image_size`` (default 224) and normalised with ImageNet's mean and std; a
        run's weights.pth is fed as its run was, from the preprocess.json beside it (so it gives the
        run's probabilities); ``mean``/``std`` give another normalization (``weights_checkpoint``)."""
        checkpoint = weights_checkpoint(model, weights, classes, image_size=image_size, mean=mean, std=std)
        return cls(checkpoint, **options)

    def _topk(self, topk: int | None) -> int:
        topk = self.default_topk if topk is None else topk
        if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
            raise ResnetlabError(f"topk must be a whole number >= 1, got {topk!r}")
        return topk

    def _ranked(self, probabilities: torch.Tensor, topk: int) -> list[list[dict[str, Any]]]:
        """Per row of (N, K) probabilities: the top ``topk`` (at most K) classes, highest first."""
        top = probabilities.topk(max(1, min(topk, len(self.classes))), dim=1)
        return [[{"class": self.classes[i], "index": i, "probability": p} for p, i in zip(values, indices)]
                for values, indices in zip(top.values.tolist(), top.indices.tolist())]
