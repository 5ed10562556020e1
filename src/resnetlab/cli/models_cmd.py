"""``resnetlab models``: every registered model with its layers, parameters, MACs and the paper's error."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list every registered model with layers, parameters and MACs")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run_models)


def run_models(args: argparse.Namespace) -> int:
    from resnetlab.models.complexity import model_table
    from resnetlab.models.paper import PAPER_CIFAR10_ERROR
    from resnetlab.models.summary import human

    rows = model_table()
    for row in rows:
        row["paper_cifar10_error"] = PAPER_CIFAR10_ERROR.get(row["name"])
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'model':<17}{'family':<10}{'layers':>7}{'params':>14}{'MACs':>10}  {'input':<11}{'paper CIFAR-10 err':>19}")
    for r in rows:
        err = f"{r['paper_cifar10_error']:.2f}%" if r["paper_cifar10_error"] else "-"
        size = "x".join(map(str, r["input_size"]))
        print(f"{r['name']:<17}{r['family']:<10}{r['layers']:>7}{r['params']:>14,}{human(r['macs']):>10}  {size:<11}{err:>19}")
    return 0

