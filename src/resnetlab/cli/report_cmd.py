"""``resnetlab report RUN_DIR... --out DIR``: figures, results table and index.html for run folders."""

from __future__ import annotations

import argparse

from resnetlab.cli.eval_cmd import add_precision_flag


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="figures, a results table and one index.html for one or more run folders")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="folders written by 'resnetlab train'")
    p.add_argument("--out", required=True, help="report folder (index.html, results.md/.csv, figures)")
    p.add_argument("--no-checkpoints", action="store_true",
                   help="skip confusion matrices and sample predictions (no model run, no data read)")
    p.add_argument("--responses", action="store_true",
                   help="add the paper's Fig. 7: the std of every 3x3 layer's response on the test split, one line per run "
                        "(see 'resnetlab responses')")
    p.add_argument("--samples", type=int, default=32, help="test images in each prediction grid (default 32)")
    p.add_argument("--title", default=None, help="page title")
    p.add_argument("--device", default="auto", help="where the checkpoints run: auto (cuda, mps, cpu) | cpu | cuda | cuda:N | mps")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a folder holding other files (replaces only the report's own: index.html, "
                        "results.csv/.md, figures/, runs/)")
    p.add_argument("--accept-changed-data", action="store_true",
                   help="show the predictions of runs whose image folder changed since they started (default: not shown, "
                        "the page says what changed)")
    add_precision_flag(p)
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    from resnetlab.reports import report

    index = report(args.run_dirs, args.out, checkpoints=not args.no_checkpoints, samples=args.samples, title=args.title,
                   device=args.device, precision=args.precision, overwrite=args.overwrite,
                   accept_changed_data=args.accept_changed_data, responses=args.responses)
    print(f"report: {index}")
    return 0
