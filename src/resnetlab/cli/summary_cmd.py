"""``resnetlab summary MODEL``: per-layer output shapes, parameters and MACs of one model."""

from __future__ import annotations

import argparse
import json

from resnetlab.cli.flags import add_deprecated_spelling, parse_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("summary", help="per-layer output shapes, parameters and MACs of one model")
    p.add_argument("model")
    p.add_argument("--input-size", nargs=3, type=int, metavar=("C", "H", "W"), help="default: the model's native size")
    p.add_argument("--num-classes", type=int, default=None, help="default: 10 for CIFAR nets, 1000 for ImageNet nets")
    p.add_argument("--model-option", dest="option", action="append", default=[], metavar="KEY=VALUE",
                   help="model option, e.g. shortcut=B, stem=cifar, stride_in_1x1=true (repeatable)")
    p.add_argument("--json", action="store_true")
    add_deprecated_spelling(p, "--option", "--model-option", dest="option", action="append")
    p.set_defaults(func=run_summary)


def run_summary(args: argparse.Namespace) -> int:
    from resnetlab.models.summary import summary

    table = summary(args.model, tuple(args.input_size) if args.input_size else None, num_classes=args.num_classes,
                    **parse_options(args.option))
    print(json.dumps(table.as_dict(), indent=2) if args.json else table)
    return 0
