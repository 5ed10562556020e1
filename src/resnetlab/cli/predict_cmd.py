"""``resnetlab predict``: the top-K classes of images, with the checkpoint's preprocessing."""

from __future__ import annotations

import argparse
import json

from resnetlab.cli.eval_cmd import add_test_view_flags


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify images or folders of images with a checkpoint")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a .pt file or a run folder (its best.pt)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders of images")
    p.add_argument("--topk", type=int, default=5, help="classes per image (default 5)")
    add_test_view_flags(p)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto", help="auto (cuda, mps, cpu) | cpu | cuda | cuda:N | mps (default auto)")
    p.add_argument("--json", action="store_true", help='print [{"path", "predictions": [{"class", "index", "probability"}]}]')
    p.set_defaults(func=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    from resnetlab.evaluation import Predictor

    predictor = Predictor(args.checkpoint, device=args.device, batch_size=args.batch_size, tta=args.tta, tta_shift=args.tta_shift)
    results = predictor.predict(args.paths, topk=args.topk)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for item in results:
        best = "  ".join(f"{p['class']} {p['probability']:.3f}" for p in item["predictions"])
        print(f"{item['path']}: {best}")
    return 0
