"""``resnetlab sweep SWEEP [--out DIR] [--parallel N|auto]``: train a list of runs, then report them.

Run the same command again after an interruption: finished runs are skipped, the unfinished
one resumes from its last checkpoint.
"""

from __future__ import annotations

import argparse
import shlex
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="train the runs of a sweep file (resumable), then write their report")
    p.add_argument("sweep", nargs="?", metavar="SWEEP", help="a sweep YAML file, or the name of a shipped sweep (see --list)")
    p.add_argument("--out", default=None, help="output folder (default: the sweep's 'out', else runs/<sweep name>)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="set_values",
                   help="config override for every run, e.g. --set data_dir=/data/cifar10-jpeg (repeatable)")
    p.add_argument("--parallel", type=parallel_runs, default=1, metavar="N|auto",
                   help="train N runs at once, each its own process, spread over every visible GPU unless --set "
                        "device=cuda:K names one (auto: as many as fit in the GPUs' free memory; "
                        "1, the default: one after another in this process)")
    p.add_argument("--only", type=run_names, default=None, metavar="NAME[,NAME...]",
                   help="train and report only these runs of the sweep (resnetlab sweep --list names them)")
    p.add_argument("--no-report", action="store_true", help="train only; write no report")
    p.add_argument("--no-checkpoints", action="store_true", help="report without confusion matrices and sample predictions")
    p.add_argument("--list", action="store_true", help="list the shipped sweeps and exit")
    p.set_defaults(func=run_sweep)


def run_names(text: str) -> list[str]:
    """A comma-separated list of run names."""
    return [name.strip() for name in text.split(",") if name.strip()]


def parallel_runs(text: str) -> int | str:
    """'auto' or a positive whole number (argparse names the flag in its message)."""
    if text == "auto":
        return text
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"use a positive whole number or auto, not {text!r}")
    return int(text)


def run_sweep(args: argparse.Namespace) -> int:
    from resnetlab.errors import ResnetlabError
    from resnetlab.sweeps.parallel import SweepInterrupted
    from resnetlab.sweeps.sweep import list_sweeps, load_sweep, parse_set, sweep
    from resnetlab.training.interrupt import TrainingInterrupted

    if args.list:
        for name in list_sweeps():
            spec = load_sweep(name)
            print(f"{name:<22}{len(spec.runs):>3} runs  {spec.description.splitlines()[0] if spec.description else ''}")
            print(f"{'':<22}     {', '.join(run.name for run in spec.runs)}")
        return 0
    if not args.sweep:
        raise ResnetlabError("name a sweep file or a shipped sweep (resnetlab sweep --list shows them)")
    try:
        result = sweep(args.sweep, args.out, overrides=parse_set(args.set_values),
                       write_report=not args.no_report, checkpoints=not args.no_checkpoints, parallel=args.parallel,
                       only=args.only)
    except (TrainingInterrupted, SweepInterrupted) as exc:
        again = shlex.join(["resnetlab", "sweep", *sys.argv[2:]]) if sys.argv[1:2] == ["sweep"] else "the same command"
        print(f"resnetlab: sweep {exc}\nrun {again} again to continue where it stopped", file=sys.stderr)
        return 130
    print(f"sweep done: {result}")
    return 0
