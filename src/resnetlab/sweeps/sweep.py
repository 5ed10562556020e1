"""``sweep(sweep_yaml, out)``: several trainings one after another, resumable, then one report.

A sweep file is a name, shared defaults and a list of runs, each a name plus config overrides:

    name: degradation
    out: runs/degradation            # default output folder (relative to the working directory)
    defaults: {recipe: paper, dataset: cifar10}
    runs:
      - {name: plain20, model: plain20}
      - {name: resnet56, model: resnet56}

Run ``name`` trains into ``<out>/<name>``; the report goes to ``<out>/report``. Resumability
comes from the run folders alone, so an interrupted sweep (Ctrl-C, a crash, a reboot) is
continued by running the same command again: a run with summary.json is finished and skipped,
a run with checkpoints/last.pt is resumed (``train(resume=True)``), a folder with neither is
started over. Every run's config is resolved before the first one trains, so a typo in the
last run fails in a second, not after hours; a finished run whose config.yaml differs from what
the sweep file now asks for is refused then too, rather than silently kept in the report.

``parallel=N`` trains N runs at once, each in its own ``resnetlab train`` process (``parallel.py``;
``"auto"``: as many as fit on the GPU, ``concurrency.py``; with several GPUs, spread over all of them,
``placement.py``); the same folders, the same resume rules, and a run that fails leaves the others
training: the sweep names it at the end and writes no report.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from resnetlab.config_values import load_yaml, parse_key_values, read_text, shown
from resnetlab.errors import ResnetlabError
from resnetlab.files import writing
from resnetlab.runs import RunFolder
from resnetlab.sweeps.parallel import LOGS, Job, train_in_parallel

if TYPE_CHECKING:
    from resnetlab.sweeps.concurrency import Share

SWEEP_KEYS = {"name", "description", "out", "defaults", "runs"}
SWEEP_FOLDERS = ("report", LOGS)  # beside the run folders in <out>
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # run names become folder names


@dataclass
class SweepRun:
    """One training of a sweep: its folder name, recipe and config overrides."""

    name: str
    recipe: str | None
    overrides: dict[str, Any]


@dataclass
class Sweep:
    name: str
    source: str  # the file it was read from
    description: str = ""
    out: str | None = None
    runs: list[SweepRun] = field(default_factory=list)


def list_sweeps() -> list[str]:
    """Names of the sweeps shipped in ``resnetlab/sweeps`` (``resnetlab sweep NAME`` finds them)."""
    folder = resources.files("resnetlab") / "sweeps"
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_sweep(spec: str | Path, overrides: dict[str, Any] | None = None) -> Sweep:
    """Read a sweep file, or a shipped sweep by name; ``overrides`` win over every run's values."""
    text, source = _sweep_text(str(spec))
    data = load_yaml(text, f"sweep {source}")  # no aliases: a few nested ones expand into gigabytes
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list) or not data["runs"]:
        raise ResnetlabError(f"sweep {source} must be a mapping with a non-empty 'runs' list")
    unknown = sorted(set(data) - SWEEP_KEYS)
    if unknown:
        raise ResnetlabError(f"sweep {source} has unknown key(s) {', '.join(unknown)}: use {', '.join(sorted(SWEEP_KEYS))}")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ResnetlabError(f"sweep {source}: 'defaults' must be a mapping of config keys to values")
    sweep = Sweep(name=str(data.get("name") or Path(source).stem), source=source,
                  description=str(data.get("description") or ""), out=data.get("out"))
    for entry in data["runs"]:
        sweep.runs.append(_sweep_run(entry, defaults, overrides or {}, source))
    names = [r.name for r in sweep.runs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ResnetlabError(f"sweep {source}: run name(s) {', '.join(repeated)} appear twice; each run needs its own folder")
    return sweep


def _sweep_text(spec: str) -> tuple[str, str]:
    path = Path(spec).expanduser()
    if path.is_file():
        return read_text(path, "sweep"), str(path)
    name = spec[: -len(".yaml")] if spec.endswith(".yaml") else spec
    if name in list_sweeps():
        return (resources.files("resnetlab") / "sweeps" / f"{name}.yaml").read_text(), f"{name} (shipped)"
    raise ResnetlabError(f"sweep {spec!r} is neither a file nor a shipped sweep: shipped are {', '.join(list_sweeps()) or 'none'}")


def _sweep_run(entry: Any, defaults: dict[str, Any], overrides: dict[str, Any], source: str) -> SweepRun:
    if not isinstance(entry, dict) or "name" not in entry:
        raise ResnetlabError(f"sweep {source}: every run must be a mapping with a 'name', got {shown(entry)}")
    values = {**defaults, **{k: v for k, v in entry.items() if k != "name"}, **overrides}
    name = str(entry["name"])
    if not NAME.match(name):
        raise ResnetlabError(f"sweep {source}: run name {name!r} must be letters, digits, '.', '_' or '-' (it names a folder)")
    if name in SWEEP_FOLDERS:
        raise ResnetlabError(f"sweep {source}: run name {name!r} is taken by the sweep's own <out>/{name} folder: rename the run")
    if "out" in values:
        raise ResnetlabError(f"sweep {source}: run {name} sets 'out'; the sweep puts each run in <out>/<name>")
    return SweepRun(name=name, recipe=values.pop("recipe", None), overrides=values)


STATE_MESSAGES = {
    "finished": "finished (summary.json present), skipped",
    "resumable": "unfinished, resuming from checkpoints/last.pt",
    "stale": "unfinished without a checkpoint, starting over",
    "new": "training",
}


def run_state(folder: Path) -> str:
    """finished (summary.json), resumable (checkpoints/last.pt), stale (other run files), or new."""
    run = RunFolder(folder)
    if run.summary_file.is_file():
        return "finished"
    if run.last.is_file():
        return "resumable"
    if folder.is_dir() and any(folder.iterdir()):
        return "stale"
    return "new"


# Where and how a run was trained, not what it is: these may differ without making it another run.
SAME_RUN_ANYWHERE = ("out", "data_dir", "device", "quiet", "compile", "recipe")


def refuse_outdated_run(folder: Path, config: Any, asker: str = "the sweep") -> None:
    """A finished or unfinished run trained with other settings than ``config`` stops ``asker`` before
    any training: an unfinished one is never resumed under settings it did not start with."""
    from resnetlab.training.config import differing_fields, read_run_config

    config_file = RunFolder(folder).config_file
    state = run_state(folder)
    if state not in ("finished", "resumable") or not config_file.is_file():
        return
    saved = read_run_config(config_file)
    changed = differing_fields(saved, config, ignore=SAME_RUN_ANYWHERE)
    if changed:
        detail = ", ".join(f"{k} {getattr(saved, k)!r} -> {getattr(config, k)!r}" for k in changed)
        how = "finished" if state == "finished" else "stopped unfinished (it would not be resumed)"
        raise ResnetlabError(
            f"{folder} {how} with other settings than {asker} now asks for ({detail}): move that folder "
            "away (or pass another --out) to train it again, or undo the change to keep it")


def sweep(
    sweep_yaml: str | Path,
    out: str | Path | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    write_report: bool = True,
    checkpoints: bool = True,
    parallel: int | str = 1,
    only: list[str] | None = None,
) -> Path:
    """Train every run of the sweep that is not finished, then write the report.

    ``only``: the names of the runs to train and report (default: all of them), e.g. Table 6
    without ResNet-1202, which takes longer than the other five together.

    ``parallel``: runs trained at once, each in its own ``resnetlab train`` process (``sweeps/parallel.py``;
    ``"auto"``: as many as the GPUs' free memory holds), spread over every visible GPU unless the runs
    name one; 1 trains them one after another in this process.
    Returns ``<out>/report/index.html`` (or the output folder with ``write_report=False``).
    """
    from resnetlab.training.config import resolve_config

    if parallel != "auto" and (isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1):
        raise ResnetlabError(f"--parallel must be a positive whole number or auto, got {shown(parallel)}")
    spec = select_runs(load_sweep(sweep_yaml, overrides), only)
    out = Path(out or spec.out or Path("runs") / spec.name).expanduser()
    configs = [resolve_config(run.recipe, overrides={**run.overrides, "out": str(out / run.name)}) for run in spec.runs]
    command = equivalent_command(sweep_yaml, out, overrides, parallel, only)
    for config in configs:
        refuse_outdated_run(Path(config.out), config)
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
    label = f"sweep {spec.name}"
    states = [run_state(out / run.name) for run in spec.runs]
    runs = [Job(i, run.name, config, state, STATE_MESSAGES[state])
            for i, (run, config, state) in enumerate(zip(spec.runs, configs, states), 1)]
    share = share_this_machine(runs, label, parallel) if parallel != 1 else None
    if share is None or share.runs == 1:
        train_one_after_another(runs, label)
    else:
        train_side_by_side(runs, out, label, share)
    if not write_report:
        return out
    from resnetlab.reports.report import report

    index = report([out / run.name for run in spec.runs], out / "report", checkpoints=checkpoints,
                   title=f"resnetlab sweep: {spec.name}", sweep_command=command)
    print(f"[sweep {spec.name}] report: {index}", flush=True)
    return index


def select_runs(spec: Sweep, only: list[str] | None) -> Sweep:
    """The sweep with only the runs named in ``only`` (all of them when None), in the sweep's order."""
    if only is None:
        return spec
    names = [run.name for run in spec.runs]
    unknown = [name for name in only if name not in names]
    if unknown or not only:
        raise ResnetlabError(f"--only {','.join(unknown) or '(nothing)'}: sweep {spec.name} has the runs {', '.join(names)}")
    return replace(spec, runs=[run for run in spec.runs if run.name in only])


def train_one_after_another(runs: list[Job], label: str) -> None:
    """The runs trained in this process; an error or Ctrl-C stops the sweep."""
    from resnetlab import training

    for run in runs:
        print(f"[{label} {run.number}/{len(runs)}] {run.name}: {run.note}", flush=True)
        if run.state != "finished":
            training.train(run.config, resume=run.state == "resumable", overwrite=run.state == "stale")


def train_side_by_side(runs: list[Job], out: Path, label: str, share: Share) -> None:
    """The runs trained ``share.runs`` at once as processes, on ``share.places`` (with ``--parallel auto``:
    no more on each than fit in its memory); the ones that failed are named once all have ended."""
    for run in runs:
        if run.state == "finished":
            print(f"[{label} {run.number}/{len(runs)}] {run.name}: {run.note}", flush=True)
    jobs = [run for run in runs if run.state != "finished"]
    if share.estimates:
        jobs = [replace(job, memory=memory) for job, memory in zip(jobs, share.estimates)]
    failed = train_in_parallel(jobs, out, share.runs, label, len(runs), share.places)
    if failed:
        listed = "; ".join(f"{f.name} ({f.message}; log {f.log})" for f in failed)
        raise ResnetlabError(f"{label}: {len(failed)} of {len(jobs)} run(s) failed: {listed}. The others finished; "
                             "fix the cause and run the same command again (finished runs are skipped)")


def share_this_machine(runs: list[Job], label: str, parallel: int | str) -> Share:
    """``--parallel`` decided for the runs still to train (``concurrency``: how many at once, on which
    GPUs), the decision printed first."""
    from resnetlab.sweeps.concurrency import Share, auto_parallel, fixed_parallel
    from resnetlab.sweeps.placement import SHARED

    configs = [run.config for run in runs if run.state != "finished"]
    if parallel != "auto":
        share = fixed_parallel(configs, int(parallel))
    else:
        share = auto_parallel(configs) if configs else Share(1, [SHARED], [], "1 (nothing left to train)")
    if share.reason:
        print(f"[{label}] --parallel {parallel}: {share.reason}", flush=True)
    return share


def equivalent_command(sweep_yaml: str | Path, out: Path, overrides: dict[str, Any] | None, parallel: int | str = 1,
                       only: list[str] | None = None) -> str:
    """The command line that does what this call does (named on the report page)."""
    words = ["resnetlab", "sweep", str(sweep_yaml), "--out", str(out)] + (["--parallel", str(parallel)] if parallel != 1 else [])
    words += ["--only", ",".join(only)] if only is not None else []
    for key, value in (overrides or {}).items():
        words += ["--set", f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"]
    return shlex.join(words)


def parse_set(pairs: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` pairs -> config overrides (``config_values.parse_key_values``)."""
    return parse_key_values(pairs, "--set")
