"""Several runs of a sweep at once, each its own ``resnetlab train`` process.

A ResNet-20 leaves a large GPU mostly idle, so a sweep may train N runs side by side. Each run is
a separate process (``python -m resnetlab train --config <out>/logs/<run>.yaml --out <out>/<run>``,
or ``--resume``) writing an ordinary run folder, so everything a sequential sweep promises holds:
a run that crashes takes no other run down, and running the sweep again skips finished runs and
resumes the others from their checkpoints. On several GPUs each child gets one
(``placement.py``: its ``CUDA_VISIBLE_DEVICES``, named in its start line and at the top of its log).

The children start in their own session: a Ctrl-C on the terminal reaches the sweep alone, which
passes it on exactly once (training treats a second signal as "stop now, no checkpoint"). On Linux
the kernel sends a child SIGTERM if the sweep itself dies, so no run trains on unwatched. A child
is quiet (its lines go to its train.log; what it prints, tracebacks included, to
``<out>/logs/<run>.log``), so the console shows one line per run start and end.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import resnetlab
from resnetlab.errors import ResnetlabError
from resnetlab.files import writing
from resnetlab.runs import RunFolder, write_config
from resnetlab.sweeps.placement import CUDA_VISIBLE_DEVICES, SHARED, Place, choose_place, environment_at

POLL_SECONDS = 0.2
STOPPED = (130, -signal.SIGINT, -signal.SIGTERM)  # how a run stopped by a signal exits (130: with a checkpoint)
LOGS = "logs"  # <out>/logs/<run>.yaml (the config a child trains) and <run>.log (what it printed)


class SweepInterrupted(Exception):
    """The sweep stopped on a signal after its runs saved their checkpoints; running it again continues."""


@dataclass
class Job:
    """One run of a sweep: its place in the sweep, its resolved config and what its folder holds."""

    number: int  # 1-based place in the sweep
    name: str
    config: Any  # TrainConfig
    state: str  # sweep.run_state: finished, resumable, stale or new
    note: str  # what the state means for it ("training", "resuming from checkpoints/last.pt")
    memory: int = 0  # bytes of GPU memory it is estimated to need (--parallel auto)


@dataclass
class Outcome:
    """A run that did not finish: its exit and last printed line, and where the rest of it is."""

    name: str
    message: str
    log: Path


def train_in_parallel(jobs: list[Job], out: Path, parallel: int, label: str, total: int,
                      places: list[Place] | None = None) -> list[Outcome]:
    """Train ``jobs``, at most ``parallel`` at once, each on one of ``places`` (several GPUs; default:
    the device each config names) and, where a place has a budget, no more there than their ``memory``
    estimates fit in; returns the runs that failed (empty: all finished).

    Raises ``SweepInterrupted`` once every child has stopped after a SIGINT or SIGTERM to the sweep."""
    logs = out / LOGS
    with writing(logs):
        logs.mkdir(parents=True, exist_ok=True)
    read_data_once(jobs, label)
    places = places or [SHARED]
    waiting, running, failed, stopped = list(jobs), {}, [], []
    env = child_environment(parallel)
    with forwarded_signals(lambda: [process for _, process, _, _ in running.values()]) as stop:
        try:
            while running or (waiting and not stop.requested):
                while not stop.requested and (chosen := next_to_start(waiting, running, parallel, places)):
                    job, place = chosen
                    waiting.remove(job)
                    process = start(job, logs, environment_at(places[place], env))
                    running[job.name] = (job, process, time.monotonic(), place)
                    if stop.requested:  # the signal came while it started: the handler did not see it
                        process.send_signal(signal.SIGINT)
                    where = f", on {places[place]}" if places[place].visible is not None else ""
                    print(f"[{label} {job.number}/{total}] {job.name}: {job.note}{where}, process {process.pid}, "
                          f"log {logs / (job.name + '.log')}", flush=True)
                time.sleep(POLL_SECONDS)
                for name, (job, process, started, _) in list(running.items()):
                    if process.poll() is not None:
                        del running[name]
                        prefix = f"[{label} {job.number}/{total}]"
                        if (outcome := report_end(job, process.returncode, logs, stop.requested, prefix, started)) is not None:
                            (stopped if stop.requested else failed).append(outcome)
        finally:  # the sweep itself failed (a folder it cannot write): its runs stop with a checkpoint too
            for _, process, _, _ in running.values():
                process.send_signal(signal.SIGINT)
                process.wait()
    if stop.requested:
        raise SweepInterrupted(f"interrupted by {stop.signal_name}: {len(stopped)} run(s) stopped (with a checkpoint once one "
                               f"has started training), {len(waiting)} not started")
    return failed


def next_to_start(waiting: list[Job], running: dict[str, tuple[Job, Any, float, int]], parallel: int,
                  places: list[Place]) -> tuple[Job, int] | None:
    """The first waiting run, in the sweep's order, that fits beside the running ones, and where."""
    loads = [[job.memory for job, _, _, at in running.values() if at == place] for place in range(len(places))]
    for job in waiting:
        if (place := choose_place(job.memory, loads, places, parallel)) is not None:
            return job, place
    return None


def read_data_once(jobs: list[Job], label: str) -> None:
    """Load each data set the runs use once, here, before they start: N processes meeting an image
    folder (or a download) for the first time would each decode (or fetch) all of it at once. Each
    then reads the cache. A data set that fails to load is left to its runs, which say why."""
    from resnetlab.data import load_dataset

    seen = set()
    for job in jobs:
        c = job.config
        key = (c.dataset, c.data_dir, c.image_size, c.skip_bad_images, c.stream, c.memory_budget_gb)
        if key in seen:
            continue
        seen.add(key)
        print(f"[{label}] reading {c.dataset}{' from ' + str(c.data_dir) if c.data_dir else ''} once for the runs", flush=True)
        budget = int(c.memory_budget_gb * 2**30) if c.memory_budget_gb else None
        try:
            load_dataset(c.dataset, c.data_dir, image_size=c.image_size, skip_bad_images=c.skip_bad_images,
                         memory_budget=budget, stream=c.stream)
        except (ResnetlabError, OSError):
            pass


def start(job: Job, logs: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start ``resnetlab train`` for ``job``: a fresh run, a resume, or a start over (--overwrite)."""
    config_file = logs / f"{job.name}.yaml"
    write_config(replace(job.config, quiet=True).to_dict(), config_file)
    folder = job.config.out
    # --flag=VALUE: a folder named like a flag (--out=--psw) stays the flag's value
    command = [sys.executable, "-m", "resnetlab", "train", f"--config={config_file}"]
    if job.state == "resumable":
        command += [f"--resume={folder}"]
    else:
        command += [f"--out={folder}"] + (["--overwrite"] if job.state == "stale" else [])
    gpu = f"{CUDA_VISIBLE_DEVICES}={env[CUDA_VISIBLE_DEVICES]} " if CUDA_VISIBLE_DEVICES in env else ""
    with writing(logs / f"{job.name}.log"), (logs / f"{job.name}.log").open("a") as console:
        console.write(f"$ {gpu}{' '.join(command)}\n")
        console.flush()
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, preexec_fn=_stop_with_parent if _prctl is not None else None)


def child_environment(parallel: int) -> dict[str, str]:
    """The sweep's environment, with the resnetlab it runs first on the path and the cores shared out.

    torch starts one thread per core in every process; N runs would then fight over N times the
    cores. ``OMP_NUM_THREADS`` set by the user wins."""
    env = dict(os.environ)
    package_root = Path(resnetlab.__file__).resolve().parents[1]
    if package_root.name not in ("site-packages", "dist-packages"):  # a source checkout (src/): the children import it too
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(package_root), env.get("PYTHONPATH")) if p)
    env.setdefault("OMP_NUM_THREADS", str(max(1, usable_cores() // parallel)))
    return env


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def report_end(job: Job, returncode: int, logs: Path, stopping: bool, prefix: str, started: float) -> Outcome | None:
    """Print how ``job`` ended; None when it finished."""
    outcome = ended(job, returncode, logs, stopping)
    if outcome is None:
        print(f"{prefix} {job.name}: finished, {final_accuracy(job)} ({duration(time.monotonic() - started)})", flush=True)
    elif stopping and returncode in STOPPED:
        print(f"{prefix} {job.name}: stopped; log {outcome.log}", flush=True)
    else:
        print(f"{prefix} {job.name}: FAILED ({outcome.message}); log {outcome.log}", flush=True)
    return outcome


def ended(job: Job, returncode: int, logs: Path, stopping: bool) -> Outcome | None:
    """None for a run that finished; otherwise why it did not (its last printed line)."""
    if returncode == 0 and RunFolder(job.config.out).summary_file.is_file():
        return None
    log = logs / f"{job.name}.log"
    if returncode in STOPPED and not stopping:
        return Outcome(job.name, "interrupted by a signal to it alone; its checkpoint resumes with the sweep", log)
    return Outcome(job.name, f"exit {returncode}: {last_line(log)}", log)


def last_line(log: Path) -> str:
    """The child's last non-empty line: 'resnetlab: error: ...' or a traceback's exception."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no output"
    return lines[-1][:300] if lines else "no output"


def final_accuracy(job: Job) -> str:
    try:
        final = RunFolder(job.config.out).read_summary()["final"]
        return f"test accuracy {final['test_acc']:.4f}"
    except (OSError, ValueError, KeyError, TypeError, ResnetlabError):
        return "no summary"


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


class _StopRequest:
    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""


@contextmanager
def forwarded_signals(children: Callable[[], list[subprocess.Popen]]) -> Iterator[_StopRequest]:
    """SIGINT/SIGTERM to the sweep: start no more runs and pass SIGINT on to each running one.

    A second signal is passed on again, which training takes as "stop now" (no checkpoint)."""
    stop = _StopRequest()

    def forward(signum: int, frame: Any = None) -> None:
        stop.requested, stop.signal_name = True, signal.Signals(signum).name
        for process in children():
            process.send_signal(signal.SIGINT)  # nothing if it has ended

    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield stop
        return
    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


PR_SET_PDEATHSIG = 1
_prctl = getattr(ctypes.CDLL(None), "prctl", None) if sys.platform.startswith("linux") else None  # resolved before any fork


def _stop_with_parent() -> None:
    """Runs in the child before exec (Linux): SIGTERM (checkpoint, stop) when the sweep dies."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
