"""``responses(sources, out)``: the paper's Fig. 7 for runs and weights files, as a CSV and a figure.

    responses.csv    run, layer (1-based, forward order), name (the 3x3 convolution), std
    responses.png    top: std against layer index; bottom: the same stds sorted in descending
                     order; one line per run, plain nets dashed and ResNets solid, as in the paper

The measurement is ``evaluation.responses``'; this module only collects it across sources and
draws it. ``report(..., responses=True)`` puts the same figure on a report's page.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from resnetlab.errors import ResnetlabError, option
from resnetlab.evaluation.plots import save_figure
from resnetlab.evaluation.responses import LayerResponses, is_weights_file, measure_responses
from resnetlab.files import replacing, writing
from resnetlab.reports.predictions import DatasetCache

CSV_NAME, FIGURE_NAME = "responses.csv", "responses.png"
CSV_COLUMNS = ("run", "layer", "name", "std")
COLOURS = matplotlib.colormaps["tab10"].colors
DPI = 110


def responses(sources: Sequence[str | Path], out: str | Path, *, model: str | Sequence[str] | None = None,
              dataset: str | None = None, data_dir: str | Path | None = None, mean: Sequence[float] | None = None,
              std: Sequence[float] | None = None, names: Sequence[str] | None = None, batch_size: int | None = None,
              device: str = "auto", accept_changed_data: bool = False) -> dict[str, Any]:
    """Measure the layer responses of each source on its test split and write ``out``/responses.csv and
    responses.png.

    A source is a run folder, one of our checkpoints, or a plain weights file: ``model`` names the
    architecture of the weights files (one name for all, or one per file in their order) and
    ``mean``/``std`` their normalisation (default: the data's own); runs and checkpoints name their
    own. ``dataset`` (with ``data_dir``) is the data the weights files are measured on, and for runs
    another than their own (``data_dir`` alone: where their own is now). ``names`` label the sources
    (default: the run folders' names, the weights files' stems). A run whose image folder changed since it
    started is refused, as eval refuses it, unless ``accept_changed_data``.
    Returns {"runs": [{"run", "model", "residual", "source", "images", "layers": [{"layer", "name", "std"}]}],
    "files": {"csv", "png"}}.
    """
    if not sources:
        raise ResnetlabError("name at least one run folder, checkpoint or weights file")
    if names is not None and len(names) != len(sources):
        raise ResnetlabError(f"{len(names)} label(s) given for {len(sources)} source(s): give one label per source")
    plain = [is_weights_file(source) for source in sources]
    models = weights_models(plain, model)
    measured = [measure_responses(source, model=models[i], dataset=dataset, data_dir=data_dir, mean=mean if plain[i] else None,
                                  std=std if plain[i] else None, name=names[i] if names else None, batch_size=batch_size,
                                  device=device, accept_changed_data=accept_changed_data)
                for i, source in enumerate(sources)]
    files = write_responses(unique_names(measured), Path(out))
    return {"runs": [summary(r) for r in measured], "files": files}


def weights_models(is_plain: Sequence[bool], model: str | Sequence[str] | None) -> list[str | None]:
    """The architecture of each source: ``model``'s for the plain weights files, None for runs and checkpoints."""
    plain = [i for i, flag in enumerate(is_plain) if flag]
    given = [model] if isinstance(model, str) else list(model or [])
    if given and not plain:
        raise ResnetlabError(f"{option('model')} names the architecture of plain weights files, and there are none here: "
                             "runs and checkpoints name their own; drop it")
    if len(given) not in (0, 1, len(plain)):
        raise ResnetlabError(f"{option('model')} gives {len(given)} architectures for {len(plain)} plain weights files: "
                             "give one for all of them, or one per file in their order")
    chosen: list[str | None] = [None] * len(is_plain)
    for k, i in enumerate(plain):
        chosen[i] = given[0] if len(given) == 1 else given[k] if given else None
    return chosen


def write_responses(measured: Sequence[LayerResponses], out: Path, *, title: str | None = None) -> dict[str, str]:
    """responses.csv and responses.png in ``out``: {"csv", "png"} (their paths)."""
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
        csv_path = out / CSV_NAME
        with replacing(csv_path) as tmp, tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            for run in measured:
                writer.writerows({**row, "std": f"{row['std']:.8g}"} for row in run.rows())
    png = plot_responses(measured, out / FIGURE_NAME, title=title)
    return {"csv": str(csv_path), "png": str(png)}


def plot_responses(measured: Sequence[LayerResponses], path: Path, *, title: str | None = None) -> Path:
    """``responses_figure`` saved as ``path``."""
    return save_figure(responses_figure(measured, title=title), path, dpi=DPI)


def responses_figure(measured: Sequence[LayerResponses], *, title: str | None = None) -> Figure:
    """Fig. 7: std by layer index (top) and sorted in descending order (bottom), plain dashed, ResNet solid."""
    fig = Figure(figsize=(7.5, 7.5))
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1)
    for i, run in enumerate(measured):
        stds = np.asarray(run.stds, dtype=float)
        style = {"color": COLOURS[i % len(COLOURS)], "linestyle": "-" if run.residual else "--", "linewidth": 1.4,
                 "label": run.name}
        layers = np.arange(1, len(stds) + 1)
        top.plot(layers, stds, **style)
        bottom.plot(layers, np.sort(stds)[::-1], **style)
    top.set_xlabel("layer index (original)")
    bottom.set_xlabel("layer index (sorted by magnitude)")
    for ax in (top, bottom):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("std")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    top.set_title(title or "Standard deviation of layer responses (3x3 layers, after BN, before addition and ReLU)",
                  fontsize=9)
    fig.tight_layout()
    return fig


def response_figure(checkpoints: Sequence[tuple[str, Path | None]], folder: Path, cache: DatasetCache, device: str,
                    accept_changed_data: bool = False) -> tuple[dict[str, str] | None, list[str]]:
    """A report's Fig. 7 from its runs' (name, checkpoint or None): ({"csv", "png"} in ``folder``, or None
    if no run could be measured; notes on the runs that could not be: no checkpoint, data not here)."""
    measured, notes = [], []
    for name, path in checkpoints:
        if path is None:
            notes.append(f"Layer responses of {name} not measured: it has no checkpoint.")
            continue
        try:
            measured.append(measure_responses(path, name=name, device=device, load=cache, accept_changed_data=accept_changed_data))
        except (ResnetlabError, OSError) as exc:  # the data of another machine, an unreadable file
            notes.append(f"Layer responses of {name} not measured: {exc}")
    if not measured:
        return None, notes
    return write_responses(unique_names(measured), folder), notes


def unique_names(measured: Sequence[LayerResponses]) -> list[LayerResponses]:
    """Labels told apart: a label given twice (two sweeps' ``resnet20``) becomes ``resnet20 (2)`` the second time."""
    seen: dict[str, int] = {}
    for run in measured:
        seen[run.name] = seen.get(run.name, 0) + 1
        if seen[run.name] > 1:
            run.name = f"{run.name} ({seen[run.name]})"
    return list(measured)


def summary(run: LayerResponses) -> dict[str, Any]:
    """One run's measurement as plain values (the Python API's and ``--json``'s)."""
    return {"run": run.name, "model": run.model, "residual": run.residual, "source": run.source, "images": run.images,
            "layers": [{"layer": row["layer"], "name": row["name"], "std": row["std"]} for row in run.rows()]}
