"""``resnetlab summary MODEL``: per-layer output shapes, parameters and MACs of one model."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from resnetlab.cli.flags import add_deprecated_spelling, parse_options
from resnetlab.cli.models_cmd import human
from resnetlab.models import create_model, model_info
from resnetlab.models.complexity import count_macs, count_parameters, layer_summary


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
    info = model_info(args.model)
    num_classes = args.num_classes if args.num_classes is not None else (10 if info.family == "cifar" else 1000)
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
        print(f"{r.name:<28}{r.kind:<18}{str(r.output_shape):<20}{r.params:>12,}{human(r.macs):>10}")
    print(f"\n{args.model}: {total['params']:,} parameters, {human(total['macs'])} multiply-accumulates "
          f"on a {'x'.join(map(str, input_size))} input")
    return 0
