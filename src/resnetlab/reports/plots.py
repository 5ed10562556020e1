"""Figures for reports, in the paper's style: one function per figure, each writes one PNG.

Error curves follow the paper's Fig. 6: error (%) against iterations, thin lines for training
error and bold lines for test error, so training and generalisation read apart at a glance;
learning-rate drops are dotted vertical lines because that is where the curves jump.
matplotlib runs with the Agg backend: reports are written on servers without a display.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from resnetlab.evaluation.plots import image_grid, save_figure
from resnetlab.models.paper import PAPER_CIFAR10_ERROR
from resnetlab.models.registry import model_info
from resnetlab.reports.reading import Run

DPI = 110
THIN, BOLD = 1.0, 2.6  # line widths: training (thin) and test (bold), as in the paper's Fig. 6
COLOURS = matplotlib.colormaps["tab10"].colors
FAMILY_TITLES = {"plain": "plain networks", "resnet": "ResNets (residual)"}


def _axes(width: float = 7, height: float = 4.4) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.grid(alpha=0.3)
    return fig, ax


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    return save_figure(fig, path, dpi=DPI)  # a report regenerated over an old one never leaves half a figure


def _series(run: Run, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(iterations, values) of one metrics column, without empty cells."""
    x = np.asarray(run.metrics.get("iteration", []), dtype=float)
    y = np.asarray(run.metrics.get(column, []), dtype=float)
    if len(y) != len(x):
        return np.empty(0), np.empty(0)
    keep = ~np.isnan(y)
    return x[keep], y[keep]


def lr_drops(run: Run) -> list[float]:
    """Iterations at which the learning rate is divided: from the run's schedule when it can be
    recomputed, else the end of the last epoch before the per-epoch lr fell."""
    planned = run.planned_lr()
    if planned is not None:
        return [float(d) for d in planned[2]]
    x, lr = _series(run, "lr")
    return [float(x[i - 1]) for i in range(1, len(lr)) if lr[i] < lr[i - 1] * 0.999]


def _mark_lr_drops(ax: Axes, runs: Sequence[Run]) -> None:
    drops = sorted({d for run in runs for d in lr_drops(run)})
    for i, d in enumerate(drops):
        ax.axvline(d, color="0.45", linestyle=":", linewidth=1.2, label="lr drop" if i == 0 else None)


def _no_data(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} recorded", ha="center", va="center", transform=ax.transAxes, color="0.4")


def error_curves(panels: Sequence[tuple[str, Sequence[Run]]], path: Path) -> Path:
    """Fig. 6 style, one panel per (title, runs): training error thin, test error bold, a colour per run.

    The overview puts each family in its own panel (plain left, ResNet right, as in the paper).
    """
    fig = Figure(figsize=(6.2 * len(panels), 4.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    for ax, (title, runs) in zip(axes, panels):
        ax.grid(alpha=0.3)
        _draw_errors(ax, runs)
        ax.set_title(title)
        ax.set_xlabel("iterations")
    axes[0].set_ylabel("error (%)")
    return _save(fig, path)


def _draw_errors(ax: Axes, runs: Sequence[Run]) -> None:
    plotted = False
    for i, run in enumerate(runs):
        colour = COLOURS[i % len(COLOURS)]
        label = run.name if len(runs) > 1 else ""
        for column, width, style, kind in (("train_acc", THIN, "-", "train"), ("val_acc", 1.6, "--", "val"),
                                           ("test_acc", BOLD, "-", "test")):
            x, acc = _series(run, column)
            if len(x):
                ax.plot(x, 100 * (1 - acc), color=colour, linewidth=width, linestyle=style,
                        marker="o" if len(x) < 4 else None, markersize=3, label=f"{label} {kind}".strip())
                plotted = True
    _mark_lr_drops(ax, runs)
    ax.set_ylim(bottom=0)
    if plotted:
        ax.legend(loc="upper right", title="thin: train, bold: test", title_fontsize=8, fontsize=8)
    else:
        _no_data(ax, "metrics")


def family_panels(runs: Sequence[Run]) -> list[tuple[str, list[Run]]]:
    """Runs grouped by family ('plain', 'resnet'), each sorted by depth, for side-by-side panels."""
    families: dict[str, list[Run]] = {}
    for run in runs:
        families.setdefault(_family(run.model), []).append(run)
    return [(FAMILY_TITLES.get(name, name), sorted(members, key=lambda r: (r.depth or 0, r.name))) for name, members in families.items()]


def loss_curves(run: Run, path: Path) -> Path:
    """Cross-entropy against iterations: training thin, validation dashed, test bold."""
    fig, ax = _axes(7, 4.0)
    plotted = False
    for column, width, style, colour in (("train_loss", THIN, "-", "tab:blue"), ("val_loss", 1.6, "--", "tab:green"),
                                         ("test_loss", BOLD, "-", "tab:red")):
        x, y = _series(run, column)
        if len(x):
            ax.plot(x, y, linewidth=width, linestyle=style, color=colour, marker="o" if len(x) < 4 else None,
                    markersize=3, label=column.replace("_", " "))
            plotted = True
    _mark_lr_drops(ax, [run])
    if plotted:
        ax.legend(loc="upper right")
    else:
        _no_data(ax, "losses")
    ax.set_xlabel("iterations")
    ax.set_ylabel("cross-entropy loss")
    ax.set_title(f"{run.name}: loss")
    return _save(fig, path)


def epoch_curves(run: Run, path: Path) -> Path:
    """Training loss, training accuracy and test accuracy against epochs on one axes, as d2l's
    ``train_ch6`` draws them: the figure the seed write-ups show, to set beside theirs."""
    fig, ax = _axes(6, 4.0)
    epochs = np.asarray(run.metrics.get("epoch", []), dtype=float)
    plotted = False
    for column, style, colour in (("train_loss", "-", "tab:blue"), ("train_acc", "--", "tab:purple"),
                                  ("test_acc", ":", "tab:green")):
        y = np.asarray(run.metrics.get(column, []), dtype=float)
        keep = ~np.isnan(y) if len(y) == len(epochs) else np.zeros(0, dtype=bool)
        if keep.any():
            ax.plot(epochs[keep], y[keep], linestyle=style, color=colour, linewidth=1.8, marker="o" if keep.sum() < 4 else None,
                    markersize=3, label=column.replace("_", " "))
            plotted = True
    if plotted:
        ax.legend(loc="center right")
        ax.grid(alpha=0.3)
    else:
        _no_data(ax, "epochs")
    ax.set_xlabel("epoch")
    ax.set_title(f"{run.name}: loss and accuracy by epoch")
    return _save(fig, path)


def lr_schedule(run: Run, path: Path) -> Path:
    """The learning rate of every iteration (from the run's schedule) and as recorded per epoch.

    Log scale, because the paper divides by 10; the recorded points show what really ran, e.g.
    the error-based warm-up of ResNet-110 that a schedule alone cannot know.
    """
    fig, ax = _axes(7, 3.0)
    planned = run.planned_lr()
    x, lr = _series(run, "lr")
    if planned is not None:
        ax.step(planned[0], planned[1], where="post", color="tab:purple", linewidth=1.8, label="schedule (per iteration)")
    if len(x):
        ax.plot(x, lr, "o", color="black", markersize=3.5, label="recorded at end of epoch")
    if planned is None and not len(x):
        _no_data(ax, "learning rate")
    else:
        values = np.concatenate([lr, planned[1] if planned else []])
        if np.all(values > 0):
            ax.set_yscale("log")
        ax.legend(loc="upper right")
    ax.set_xlabel("iterations")
    ax.set_ylabel("learning rate")
    ax.set_title(f"{run.name}: learning-rate schedule")
    return _save(fig, path)


def prediction_grid(images: np.ndarray, labels: Sequence[int], predictions: Sequence[int], classes: Sequence[str],
                    path: Path, title: str, mistake_maps: np.ndarray | None = None) -> Path:
    """Sample test images (uint8 N,C,H,W) titled with the prediction; green ✓ right, red ✗ wrong; with
    ``mistake_maps`` (uint8 M,3,H,W), a last row: the mistakes with the map of the class they were taken for."""
    right = [int(label) == int(pred) for label, pred in zip(labels, predictions)]
    captions = [f"✓ {classes[pred]}" if ok else f"✗ {classes[pred]}\n(true {classes[label]})"
                for ok, label, pred in zip(right, labels, predictions)]
    colours = ["tab:green" if ok else "tab:red" for ok in right]
    pictures = list(images)
    if mistake_maps is not None and len(mistake_maps):
        columns = 8  # image_grid's; the maps start a row of their own
        blank = np.full((3, *mistake_maps.shape[2:]), 255, dtype=np.uint8)
        padding = -len(pictures) % columns
        mistaken = [p for p, ok in zip(predictions, right) if not ok]
        pictures += [blank] * padding + list(mistake_maps)
        captions += [""] * padding + [f"CAM: why {classes[p]}?" for p in mistaken[: len(mistake_maps)]]
        colours += ["white"] * padding + ["tab:red"] * len(mistake_maps)
    fig = image_grid(pictures, captions, colours=colours, cell=(1.55, 1.85))
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def _family(model: str) -> str:
    """'resnet56' -> 'resnet', 'plain20' -> 'plain': runs of one family are joined by a line."""
    return model.rstrip("0123456789_") or model


def _scatter_by_family(ax: Axes, points: list[tuple[Run, float, float]]) -> None:
    """Runs that differ in depth alone (``Run.comparable``: same family, data, recipe and changes,
    image size) joined by one line, labelled by their family; every other run a point of its own,
    labelled by its name: a CIFAR resnet20 and a 96-px resnet18 are no series."""
    ax.margins(x=0.15, y=0.12)  # room for the run names written beside the points
    groups: dict[tuple[str, ...], list[tuple[Run, float, float]]] = {}
    for point in points:
        groups.setdefault(point[0].comparable(), []).append(point)
    titled: set[str] = set()
    for members in groups.values():
        members.sort(key=lambda p: p[1])
        xs, ys = [p[1] for p in members], [p[2] for p in members]
        depths = [p[0].depth for p in members]
        if len(members) > 1 and len(set(depths)) == len(depths):  # one run per depth: a series
            title = FAMILY_TITLES.get(_family(members[0][0].model), _family(members[0][0].model))
            label = title if title not in titled else f"{title}: {members[0][0].name} ..."
            titled.add(title)
            ax.plot(xs, ys, marker="o", linewidth=1.2, markersize=6, label=label)
        else:
            for run, x, y in members:
                ax.plot([x], [y], marker="o", linestyle="none", markersize=6, label=run.name)
        for run, x, y in members:
            ax.annotate(run.name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)


def depth_vs_error(runs: Sequence[Run], path: Path, show_paper: bool) -> Path:
    """Test error against depth, per family; the paper's Table 6 as grey reference when comparable."""
    fig, ax = _axes()
    points = [(r, float(r.depth), 100 * (1 - r.final("test_acc"))) for r in runs
              if r.depth is not None and r.final("test_acc") is not None]
    _scatter_by_family(ax, points)
    if show_paper:
        depths = {r.model: r.depth for r in runs}
        ref = sorted((model_info(m).depth, e) for m, e in PAPER_CIFAR10_ERROR.items() if m in depths)
        if ref:
            ax.plot(*zip(*ref), linestyle="--", marker="s", color="0.55", markerfacecolor="none",
                    label="paper, CIFAR-10 (Table 6)")
    if not points:
        _no_data(ax, "test error")
    else:
        ax.legend(loc="best")
    if points and max(p[1] for p in points) / max(min(p[1] for p in points), 1) > 20:
        ax.set_xscale("log")
    ax.set_xlabel("depth (weighted layers)")
    ax.set_ylabel("test error (%)")
    ax.set_title("Depth vs test error")
    return _save(fig, path)


def params_vs_accuracy(runs: Sequence[Run], path: Path) -> Path:
    """Test accuracy against parameter count (log scale)."""
    return _accuracy_scatter(runs, path, "params", 1.0, log_x=True, xlabel="parameters",
                             title="Parameters vs test accuracy", missing="parameters and accuracy")


def time_vs_accuracy(runs: Sequence[Run], path: Path) -> Path:
    """Test accuracy against wall-clock training time in minutes."""
    return _accuracy_scatter(runs, path, "train_seconds", 1 / 60, log_x=False, xlabel="training time (minutes)",
                             title="Training time vs test accuracy", missing="training time and accuracy")


def _accuracy_scatter(runs: Sequence[Run], path: Path, key: str, scale: float, *, log_x: bool,
                      xlabel: str, title: str, missing: str) -> Path:
    """Test accuracy (%) against ``summary[key] * scale``, one marker style per model family."""
    fig, ax = _axes()
    points = [(r, float(r.summary[key]) * scale, 100 * r.final("test_acc")) for r in runs
              if r.summary.get(key) and r.final("test_acc") is not None]
    _scatter_by_family(ax, points)
    if points:
        if log_x:
            ax.set_xscale("log")
        ax.legend(loc="best")
    else:
        _no_data(ax, missing)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    return _save(fig, path)
