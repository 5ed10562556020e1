"""``resnetlab models`` and ``resnetlab summary``: what the zoo holds and what each net costs."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from resnetlab.config_values import parse_key_values
from resnetlab.models import create_model, model_info
from resnetlab.models.complexity import count_macs, count_parameters, layer_summary, model_table
from resnetlab.models.paper import PAPER_CIFAR10_ERROR


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list every registered model with layers, parameters and MACs")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run_models)

    p = sub.add_parser("summary", help="per-layer output shapes, parameters and MACs of one model")
    p.add_argument("model")
    p.add_argument("--input-size", nargs=3, type=int, metavar=("C", "H", "W"), help="default: the model's native size")
    p.add_argument("--num-classes", type=int, default=None, help="default: 10 for CIFAR nets, 1000 for ImageNet nets")
    p.add_argument("--model-option", "--option", dest="option", action="append", default=[], metavar="KEY=VALUE",
                   help="model option, e.g. shortcut=B, stem=cifar, stride_in_1x1=true (repeatable)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_summary)


def parse_options(pairs: list[str]) -> dict[str, object]:
    """``--model-option KEY=VALUE`` pairs -> ``create_model`` keyword options, typed as config values are."""
    return parse_key_values(pairs, "--model-option")


def run_models(args: argparse.Namespace) -> int:
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
        print(f"{r['name']:<17}{r['family']:<10}{r['layers']:>7}{r['params']:>14,}{_human(r['macs']):>10}  {size:<11}{err:>19}")
    return 0


def run_summary(args: argparse.Namespace) -> int:
    info = model_info(args.model)
    num_classes = args.num_classes or (10 if info.family == "cifar" else 1000)
    input_size = tuple(args.input_size) if args.input_size else info.input_size
    model = create_model(args.model, num_classes=num_classes, in_channels=input_size[0], **parse_options(args.option))
    rows = layer_summary(model, input_size)
    total = {"model": args.model, "input_size": list(input_size), "num_classes": num_classes,
             "params": count_parameters(model), "macs": count_macs(model, input_size)}
    if args.json:
        print(json.dumps({**total, "layers": [asdict(r) for r in rows]}, indent=2))
        return 0
    print(f"{'layer':<28}{'type':<18}{'output shape':<20}{'params':>12}{'MACs':>10}")
    for r in rows:
        print(f"{r.name:<28}{r.kind:<18}{str(r.output_shape):<20}{r.params:>12,}{_human(r.macs):>10}")
    print(f"\n{args.model}: {total['params']:,} parameters, {_human(total['macs'])} multiply-accumulates "
          f"on a {'x'.join(map(str, input_size))} input")
    return 0


def _human(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))
