"""Class activation maps: where in a photo the network found the evidence for a class.

Built on the ``grad-cam`` package (``pytorch_grad_cam``: Grad-CAM and its family), the library the
field uses for ResNets; it is an optional extra (``pip install 'resnetlab[explain]'``). What this
module adds is what a user would otherwise have to find out: which layer to look at (the last
block of the last stage, for the CIFAR and ImageNet families alike, plain nets included: the last
feature map before the pooling, with the most meaning and still some space) and the model's own
input (the predictor's preprocessing, precision and EXIF rule, the centre view).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image
from torch import nn

from resnetlab.data.decode import rgb_image
from resnetlab.errors import ResnetlabError, option
from resnetlab.evaluation.plots import check_figure_path, save_figure
from resnetlab.evaluation.preprocess import checkpoint_transform, open_rgb
from resnetlab.models.registry import model_info
from resnetlab.precision import autocast

INSTALL = "pip install 'resnetlab[explain]'"
# --cam-method names -> the pytorch_grad_cam class (methods that need only a target layer)
CAM_METHODS = {
    "gradcam": "GradCAM", "hirescam": "HiResCAM", "gradcam++": "GradCAMPlusPlus", "xgradcam": "XGradCAM",
    "layercam": "LayerCAM", "eigencam": "EigenCAM", "eigengradcam": "EigenGradCAM", "scorecam": "ScoreCAM",
    "ablationcam": "AblationCAM", "gradcamelementwise": "GradCAMElementWise",
}
LAST_STAGE = {"cifar": "layer3", "imagenet": "layer4"}  # per model family: the stage whose last block is looked at


def grad_cam_installed() -> bool:
    return importlib.util.find_spec("pytorch_grad_cam") is not None


def require_grad_cam() -> Any:
    """The ``pytorch_grad_cam`` module, or one line naming the install command."""
    if not grad_cam_installed():
        raise ResnetlabError(f"class activation maps need the grad-cam package: {INSTALL}")
    return importlib.import_module("pytorch_grad_cam")


def check_cam_method(method: str) -> str:
    if method not in CAM_METHODS:
        raise ResnetlabError(f"unknown CAM method {option('cam_method', method)}: choose one of {', '.join(CAM_METHODS)}")
    return method


def check_explain_request(path: str | Path, inputs: Sequence[str | Path], classes: Sequence[str], class_name: str | None,
                          method: str, overwrite: bool) -> None:
    """Everything ``explain`` can refuse, checked before any photo is predicted."""
    require_grad_cam()
    check_cam_method(method)
    class_index(classes, class_name)
    check_figure_path(path, overwrite=overwrite, inputs=inputs)


def target_layer(model: nn.Module, name: str) -> nn.Module:
    """The last block of the last stage of ``model`` (registered as ``name``)."""
    return getattr(model, LAST_STAGE[model_info(name).family])[-1]


def activation_maps(model: nn.Module, name: str, images: torch.Tensor, classes: Sequence[int], *, method: str = "gradcam",
                    precision: str = "fp32") -> np.ndarray:
    """Maps (N, H, W) in [0, 1] of ``classes[i]`` for each preprocessed image (N, C, H, W), at the
    images' size: the library's own output for ``target_layer``, in ``precision``."""
    cam_library = require_grad_cam()
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam_class = getattr(cam_library, CAM_METHODS[check_cam_method(method)])
    device, layer = next(model.parameters()).device, target_layer(model, name)
    # The library reads the layer's output and gradient through numpy, which has no bfloat16: under
    # bf16/fp16 autocast it is handed a float32 copy (registered first, so its hooks see the copy;
    # the layers after it cast back, as autocast does).
    as_float = layer.register_forward_hook(lambda module, inputs, output: output.float())
    try:
        with cam_class(model=model, target_layers=[layer]) as cam, torch.enable_grad(), autocast(device, precision):
            maps = cam(input_tensor=images.to(device), targets=[ClassifierOutputTarget(int(k)) for k in classes])
    finally:
        as_float.remove()
    return np.asarray(maps, dtype=np.float32)


@dataclass
class Explanation:
    """One photo as the model saw it, and the map of the class explained."""

    path: str
    picture: np.ndarray  # (H, W, 3) float in [0, 1]: the model's input, normalisation undone
    heat: np.ndarray  # (H, W) float in [0, 1]
    explained: str  # the class whose evidence the map shows
    predictions: list[dict[str, Any]]


def explain_files(predictor: Any, results: list[dict[str, Any]], *, class_name: str | None = None,
                  method: str = "gradcam") -> list[Explanation]:
    """For each of ``Predictor.predict``'s ``results``: the map of its top class (or ``class_name``),
    on the centre view of the predictor's preprocessing, in its precision and EXIF rule."""
    index = class_index(predictor.classes, class_name)
    explanations = []
    for item in results:
        target = index if index is not None else item["predictions"][0]["index"]
        explanation = explain_image(predictor, open_rgb(item["path"], predictor.exif_orientation), target, method=method)
        explanation.path, explanation.predictions = item["path"], item["predictions"]
        explanations.append(explanation)
    return explanations


def explain_image(predictor: Any, image: Image.Image, target: int, *, method: str = "gradcam") -> Explanation:
    """The map of class ``target`` on an image in memory (already upright: EXIF rule applied), on the
    centre view of the predictor's preprocessing, in its precision."""
    transform = checkpoint_transform(predictor.checkpoint)  # the one centre view predict starts from
    spec, norm = predictor.checkpoint["model"], predictor.checkpoint["normalization"]
    pixels = transform(rgb_image(image)).unsqueeze(0)
    heat = activation_maps(predictor.model, spec["name"], pixels.contiguous(memory_format=predictor.layout), [target],
                           method=method, precision=predictor.precision)[0]
    return Explanation("", displayable(pixels[0], norm["mean"], norm["std"]), heat, predictor.classes[target], [])


def class_index(classes: Sequence[str], class_name: str | None) -> int | None:
    if class_name is None:
        return None
    if class_name not in classes:
        raise ResnetlabError(f"{option('explain_class', class_name)} names no class of this model: "
                             f"choose one of {', '.join(classes)[:300]}")
    return list(classes).index(class_name)


def displayable(image: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """A normalised (C, H, W) model input back to (H, W, 3) RGB in [0, 1] (grayscale repeated)."""
    shape = (-1, 1, 1)
    pixels = (image.float().cpu() * torch.tensor(std).view(shape) + torch.tensor(mean).view(shape)).clamp(0, 1)
    return pixels.expand(3, -1, -1).permute(1, 2, 0).numpy() if pixels.shape[0] == 1 else pixels.permute(1, 2, 0).numpy()


def overlay(picture: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """The map over the picture, as the library draws it (its jet colour map, half and half)."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    return show_cam_on_image(picture.astype(np.float32), heat, use_rgb=True)


def plot_explanations(explanations: list[Explanation], path: str | Path, *, method: str = "gradcam", overwrite: bool = False) -> Path:
    """One row per photo: the map over the photo the model saw, beside its top classes."""
    check_figure_path(path, overwrite=overwrite, inputs=[e.path for e in explanations])
    fig = Figure(figsize=(8, 3.6 * len(explanations)))
    for row, item in enumerate(explanations):
        photo = fig.add_subplot(len(explanations), 2, 2 * row + 1)
        photo.imshow(overlay(item.picture, item.heat), interpolation="bilinear")
        photo.set_title(f"{Path(item.path).name}: {method} of {item.explained}", fontsize=9)
        photo.axis("off")
        bars = fig.add_subplot(len(explanations), 2, 2 * row + 2)
        names = [p["class"] for p in item.predictions][::-1]
        bars.barh(names, [p["probability"] for p in item.predictions][::-1],
                  color=["tab:orange" if n == item.explained else "tab:blue" for n in names])
        bars.set_xlim(0, 1)
        bars.set_xlabel("probability")
        bars.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
