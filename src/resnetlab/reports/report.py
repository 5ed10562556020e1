"""``report(run_dirs, out)``: figures, tables and one index.html for a set of run folders.

The report folder it writes:

    index.html                 everything below on one page (relative links only)
    results.md, results.csv    the Table 6-style results table
    figures/                   across runs: error_curves.png (Fig. 6), depth_vs_error.png,
                               params_vs_accuracy.png, time_vs_accuracy.png
    runs/<run>/                per run: error_curves.png, loss.png, epochs.png, lr.png, confusion.png,
                               predictions.png (the last two need the checkpoint and the data)

Anything that cannot be drawn (no checkpoint, data not on this machine, unfinished run) is
named on the page instead of failing the report: a report is most wanted when something broke.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from resnetlab.devices import resolve_device
from resnetlab.errors import ResnetlabError, option
from resnetlab.evaluation.plots import plot_confusion_matrix
from resnetlab.files import replacing, writing
from resnetlab.reports import plots
from resnetlab.reports import responses as fig7
from resnetlab.reports.html import FigureRef, Page, RunSection, render
from resnetlab.reports.predictions import DatasetCache, TestPredictions, predict_test_split
from resnetlab.reports.reading import Run, read_runs
from resnetlab.reports.tables import format_cell, format_duration, result_rows, write_csv, write_markdown
from resnetlab.runs import RunFolder


def report(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    *,
    checkpoints: bool = True,
    responses: bool = False,
    samples: int = 32,
    title: str | None = None,
    sweep_command: str | None = None,
    device: str = "auto",
    precision: str | None = None,
    overwrite: bool = False,
    accept_changed_data: bool = False,
) -> Path:
    """Write the report of ``run_dirs`` into ``out`` and return the path of its index.html.

    ``responses`` adds the paper's Fig. 7 (the std of every 3x3 layer's response on the test split,
    ``reports.responses``) to the overview; it runs the checkpoints.

    ``checkpoints=False`` skips the confusion matrices and sample predictions (no model is run,
    no data is read). ``samples`` test images go into each prediction grid. ``device`` runs the
    checkpoints (auto: cuda, mps, cpu; an unavailable one stops the report before it starts), in
    ``precision`` (default: each run's own). ``out`` may be new, empty or a report of ours; a folder
    holding other files is refused unless ``overwrite`` (which replaces only ``REPORT_FILES``). A run
    whose image folder changed since it started is refused, as eval refuses it, unless ``accept_changed_data``.
    """
    if responses and not checkpoints:
        raise ResnetlabError(f"layer responses run the checkpoints: drop {option('checkpoints', False)} "
                             f"or {option('responses', True)}")
    device = str(resolve_device(device)) if checkpoints else device
    runs = read_runs(list(run_dirs))
    out = Path(out)
    check_report_folder(out, overwrite)
    rows = result_rows(runs)
    with writing(out):
        (out / "figures").mkdir(parents=True, exist_ok=True)
        write_csv(rows, out / "results.csv")
        write_markdown(rows, out / "results.md")

    fig7_figures, fig7_downloads, fig7_notes = (_responses_part(runs, out, device, accept_changed_data) if responses
                                                else ([], [], []))
    cache = DatasetCache()
    sections = []
    for i, run in enumerate(runs):  # minutes each with checkpoints: say which run is being evaluated
        if checkpoints:
            print(f"[report] run {i + 1}/{len(runs)}: {run.name} ({run.path}): evaluating its checkpoint on its test split",
                  flush=True)
        sections.append(_run_section(run, out, _folder_name(run, i), cache if checkpoints else None, samples, device,
                                     sweep_command, precision, accept_changed_data))
    page = Page(
        title=title or f"resnetlab report: {len(runs)} run{'s' if len(runs) != 1 else ''}",
        generated=datetime.now().strftime("%Y-%m-%d %H:%M"),
        table_rows=rows,
        overview=_overview(runs, out) + fig7_figures,
        runs=sections,
        downloads=[("results.md", "results.md"), ("results.csv", "results.csv"), *fig7_downloads],
        sweep=sweep_command,
        notes=["Errors are top-1 on each run's test split after its last epoch. Paper errors are He et al. (2016), "
               "Table 6 (official CIFAR-10 binaries), shown for reference.", *fig7_notes],
    )
    index = out / "index.html"
    html = render(page)
    with replacing(index) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return index


REPORT_FILES = ("index.html", "results.csv", "results.md", "figures", "runs")  # everything a report writes
REPORT_MARK = "by <code>resnetlab report</code>"  # in every index.html a report writes (html.render)


def check_report_folder(out: Path, overwrite: bool) -> None:
    """A report is written into a new or empty folder, or over a report of ours; a folder holding a
    user's own index.html or results.md is refused unless ``overwrite``, which replaces only the
    report's own files and leaves every other file there as it is."""
    if overwrite or not out.is_dir() or _is_report(out / "index.html"):
        return
    others = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise ResnetlabError(f"{out} holds files that resnetlab report did not write ({shown}): pass another {option('out')}, "
                             f"or {option('overwrite', True)} to write the report there (it replaces only {', '.join(REPORT_FILES)})")


def _is_report(index: Path) -> bool:
    try:
        with index.open("rb") as f:
            return REPORT_MARK.encode() in f.read(1 << 16)
    except OSError:
        return False


def _overview(runs: Sequence[Run], out: Path) -> list[FigureRef]:
    """The across-run figures, in figures/."""
    figures = out / "figures"
    show_paper = any(run.is_cifar10 for run in runs)
    panels = plots.family_panels(runs)  # plain | ResNet side by side, as in the paper
    return [
        _ref(out, plots.error_curves(panels, figures / "error_curves.png"),
             "Training (thin) and test (bold) error against iterations, as in the paper's Fig. 6; dotted lines: learning-rate drops",
             width=min(560 * len(panels), 1150)),
        _ref(out, plots.depth_vs_error(runs, figures / "depth_vs_error.png", show_paper), "Depth against test error"),
        _ref(out, plots.params_vs_accuracy(runs, figures / "params_vs_accuracy.png"), "Parameters against test accuracy"),
        _ref(out, plots.time_vs_accuracy(runs, figures / "time_vs_accuracy.png"), "Training time against test accuracy"),
    ]


def _run_section(run: Run, out: Path, folder_name: str, cache: DatasetCache | None, samples: int,
                 device: str, sweep_command: str | None, precision: str | None = None,
                 accept_changed_data: bool = False) -> RunSection:
    folder = out / "runs" / folder_name
    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
    section = RunSection(name=run.name, anchor=f"run-{folder_name}", folder=str(run.path.resolve()),
                         command=_command(run, sweep_command), facts=_facts(run))
    if not run.finished:
        section.missing.append("Unfinished run (no summary.json): the curves show the epochs done so far.")
    if not run.metrics:
        section.missing.append("No metrics.csv: no curves.")
    section.figures += [
        _ref(out, plots.error_curves([(f"{run.name}: error", [run])], folder / "error_curves.png"),
             "Training (thin) and test (bold) error; dotted lines: learning-rate drops"),
        _ref(out, plots.loss_curves(run, folder / "loss.png"), "Loss curves"),
        _ref(out, plots.epoch_curves(run, folder / "epochs.png"), "Training loss, training and test accuracy by epoch"),
        _ref(out, plots.lr_schedule(run, folder / "lr.png"), "Learning-rate schedule"),
    ]
    if cache is None:
        section.missing.append("Confusion matrix and sample predictions skipped (report written without checkpoints).")
        return section
    try:
        predictions = predict_test_split(run, cache, samples=samples, device=device, precision=precision,
                                         accept_changed_data=accept_changed_data)
    except ResnetlabError as exc:
        section.missing.append(f"Confusion matrix and sample predictions not shown: {exc}")
        return section
    section.figures += _prediction_figures(run, predictions, out, folder)
    section.facts.append(("checkpoint evaluated", f"{predictions.checkpoint.name}: {100 * predictions.accuracy:.2f}% "
                          f"correct on {predictions.count:,} test images"))
    return section


def _prediction_figures(run: Run, predictions: TestPredictions, out: Path, folder: Path) -> list[FigureRef]:
    wrong = sum(p != t for p, t in zip(predictions.sample_predictions, predictions.sample_labels))
    confusion = plot_confusion_matrix(predictions.confusion, predictions.classes, folder / "confusion.png",
                                      title=f"{run.name}: confusion matrix (test, {predictions.checkpoint.name})")
    grid = plots.prediction_grid(
        predictions.sample_images, predictions.sample_labels, predictions.sample_predictions, predictions.classes,
        folder / "predictions.png",
        title=f"{run.name}: {len(predictions.sample_labels)} random test images, {wrong} wrong (green ✓ right, red ✗ wrong)"
              + ("; last row: the mistakes' class activation maps" if predictions.mistake_maps is not None
                 and len(predictions.mistake_maps) else ""),
        mistake_maps=predictions.mistake_maps,
    )
    return [_ref(out, confusion, "Confusion matrix on the test split (rows: true class)"),
            _ref(out, grid, "Sample test predictions", width=1150)]  # full width: the captions are small


def _command(run: Run, sweep_command: str | None) -> str | None:
    """The recorded command; for a run trained from Python ("-"), the sweep that made it or the
    equivalent ``resnetlab train --config`` (config.yaml is a valid --config file)."""
    if run.command and run.command != "-":
        return run.command
    if sweep_command:
        return f"{sweep_command}   (run {run.name})"
    if run.config:
        return f"resnetlab train --config {RunFolder(run.path).config_file}   (equivalent: the run was started from Python)"
    return None


def _facts(run: Run) -> list[tuple[str, str]]:
    s = run.summary
    test_acc, train_acc = run.final("test_acc"), run.final("train_acc")
    facts = [
        ("model", f"{run.model} ({run.depth or '?'} layers)"),
        ("parameters", format_cell("params", s.get("params"))),
        ("dataset", str(s.get("dataset") or run.config.get("dataset") or "-")),
        ("recipe", str(run.recipe or "-")),
        ("epochs / iterations", f"{s.get('epochs', '-')} / {s.get('iterations', '-')}"),
        ("final training error", "-" if train_acc is None else f"{100 * (1 - train_acc):.2f}%"),
        ("final test error", "-" if test_acc is None else f"{100 * (1 - test_acc):.2f}%"),
        ("training time", "-" if s.get("train_seconds") is None else format_duration(float(s["train_seconds"]))),
        ("throughput", "-" if not s.get("images_per_second") else f"{float(s['images_per_second']):.0f} images/s"),
        ("precision", str(s.get("precision") or "-")),
        ("processes", str(s.get("world_size", "-"))),
    ]
    return facts


def _folder_name(run: Run, index: int) -> str:
    """A file-system-safe, unique folder name for the run's figures."""
    return f"{index + 1:02d}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', run.name).strip('_') or 'run'}"


def _ref(out: Path, path: Path, caption: str, width: int = 560) -> FigureRef:
    return FigureRef(src=path.relative_to(out).as_posix(), caption=caption, width=width)


def _responses_part(runs: Sequence[Run], out: Path, device: str,
                    accept_changed_data: bool) -> tuple[list[FigureRef], list[tuple[str, str]], list[str]]:
    """The overview's Fig. 7 (figures/responses.png and .csv): (figures, downloads, notes on runs not measured)."""
    files, notes = fig7.response_figure([(run.name, run.checkpoint_file()) for run in runs], out / "figures", DatasetCache(), device,
                                        accept_changed_data)
    if files is None:
        return [], [], notes
    figure = _ref(out, Path(files["png"]), "Standard deviations of layer responses on the test split, as in the paper's Fig. 7: "
                  "each 3x3 layer after BN, before addition and ReLU; top in layer order, bottom sorted; plain dashed, ResNets solid",
                  width=620)
    return [figure], [("responses.csv", Path(files["csv"]).relative_to(out).as_posix())], notes
