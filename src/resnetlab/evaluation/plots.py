"""PNG figures for evaluation: the confusion matrix and a grid of confidently wrong images.

Figures are built with ``matplotlib.figure.Figure`` and the Agg canvas directly, not pyplot:
no global backend switch, no display needed, and nothing leaks between calls.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from resnetlab.data.orientation import DEFAULT_EXIF_ORIENTATION
from resnetlab.errors import ResnetlabError, option
from resnetlab.evaluation.preprocess import open_rgb
from resnetlab.files import replacing

COMMON_FORMATS = ("png", "jpg", "pdf", "svg")  # named when a figure's file type is not one matplotlib writes


def figure_formats() -> list[str]:
    """The file types matplotlib can save a figure as (``png``, ``pdf``, ``svg``...), as its Agg canvas lists them."""
    return sorted(FigureCanvasAgg(Figure()).get_supported_filetypes())


def check_figure_path(path: str | Path, *, overwrite: bool = False, inputs: Iterable[str | Path] = ()) -> Path:
    """``path`` if a figure may be written there: its name ends in a type matplotlib writes, it is
    none of ``inputs`` (the images the figure shows: never replaced, even with ``overwrite``), and
    it is no existing file unless ``overwrite``. Checked before any work, so nothing is lost to a typo."""
    path = Path(path)
    kind = path.suffix.lower().lstrip(".")
    if kind not in figure_formats():
        raise ResnetlabError(f"cannot save a figure as {path}: matplotlib writes no {path.suffix or 'extension-less'} files; "
                             f"end the name with .{', .'.join(COMMON_FORMATS)} (or any of {', '.join(figure_formats())})")
    for image in inputs:
        if path.resolve() == Path(image).resolve() or (path.exists() and os.path.samefile(path, image)):
            raise ResnetlabError(f"{path} is one of the images being shown: choose another file for the figure")
    if path.is_dir():
        raise ResnetlabError(f"cannot save a figure as {path}: it is a folder (give a file name, e.g. {path / 'predictions.png'})")
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise ResnetlabError(f"{path} already exists: pass {option('overwrite', True)} to replace it, or choose another file")
    return path


def save_figure(fig: Figure, path: str | Path, *, dpi: int = 100) -> Path:
    """Render to a temporary file beside ``path``, then rename: an interrupted save keeps the old
    figure. Every figure of evaluation and of reports is saved here."""
    path = Path(path)
    FigureCanvasAgg(fig)
    with replacing(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lower().lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
    return path


def image_grid(images: Sequence[Any], captions: Sequence[str], *, columns: int = 8, colours: Sequence[str] | None = None,
               cell: tuple[float, float] = (1.9, 2.1), empty: str = "no images") -> Figure:
    """uint8 images (N, C, H, W: tensors or arrays) with one caption each, ``columns`` per row; a
    ``colours`` entry colours an image's caption and frame (a report's right and wrong predictions)."""
    n = len(images)
    rows, cols = max(1, -(-n // columns)), max(1, min(columns, n))
    fig = Figure(figsize=(cell[0] * cols, cell[1] * rows))
    for i in range(rows * cols):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)
        if i >= n:
            continue
        picture = np.asarray(images[i]).transpose(1, 2, 0)  # (H, W, C)
        if picture.shape[2] == 1:
            ax.imshow(picture[:, :, 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        else:
            ax.imshow(picture[:, :, :3], interpolation="nearest")
        colour = colours[i] if colours is not None else "black"
        ax.set_title(captions[i], fontsize=7, color=colour)
        if colours is not None:
            ax.set_frame_on(True)
            for spine in ax.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(2.5)
    if n == 0:
        fig.axes[0].text(0.5, 0.5, empty, ha="center", va="center")
    return fig


def plot_confusion_matrix(confusion: torch.Tensor, classes: list[str], path: str | Path, title: str = "") -> Path:
    """Row-normalised heat map (rows = true class) with the raw counts written in each cell."""
    k = len(classes)
    counts = confusion.double()
    rates = counts / counts.sum(1, keepdim=True).clamp(min=1)
    side = max(4.0, 0.55 * k + 2)
    fig = Figure(figsize=(side, side))
    ax = fig.add_subplot()
    image = ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    ax.set_xticks(range(k), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix")
    if k <= 30:  # beyond that the numbers are unreadable
        for i in range(k):
            for j in range(k):
                color = "white" if rates[i, j] > 0.5 else "black"
                ax.text(j, i, int(counts[i, j]), ha="center", va="center", fontsize=7, color=color)
    return save_figure(fig, path)


def plot_image_grid(images: torch.Tensor, captions: list[str], path: str | Path, columns: int = 8) -> Path:
    """uint8 images (N, C, H, W) with one caption each, ``columns`` per row (eval's confident mistakes)."""
    return save_figure(image_grid(images, captions, columns=columns, empty="no errors"), path)


def plot_predictions(results: list[dict], path: str | Path, columns: int = 4, *, overwrite: bool = False,
                     exif_orientation: str = DEFAULT_EXIF_ORIENTATION) -> Path:
    """The photos of ``Predictor.predict`` results, each titled with its most probable class and
    that probability (the figure the transfer-learning write-ups show), each shown as the model saw
    it (``exif_orientation``: the predictor's rule). An existing ``path`` is replaced only with
    ``overwrite``, and never one of the photos (``check_figure_path``)."""
    check_figure_path(path, overwrite=overwrite, inputs=[item["path"] for item in results])
    n = len(results)
    cols = min(columns, n)
    rows = -(-n // cols)
    fig = Figure(figsize=(4 * cols, 4 * rows))
    for k, item in enumerate(results):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(open_rgb(item["path"], exif_orientation))
        best = item["predictions"][0]
        ax.set_title(f"class: {best['class']}   prob: {best['probability']:.3f}", fontsize=11)
        ax.axis("off")
    return save_figure(fig, path)
