"""``resnetlab eval``: accuracy, per-class accuracy, confusion matrix and mistakes of a checkpoint."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from resnetlab.cli.flags import add_deprecated_spelling

JSON_KEYS = ("top1", "top5", "loss", "n", "per_class", "test_views", "views", "precision")


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (batch sizes, top-K)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text[:100]!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def add_run_flags(p: argparse.ArgumentParser, batch_default: int | None) -> None:
    """--batch-size / --device, shared by eval and predict (the device is resolved where it is used)."""
    p.add_argument("--batch-size", type=positive_int, default=batch_default)
    p.add_argument("--device", default="auto", help="auto (cuda, mps, cpu) | cpu | cuda | cuda:N | mps (default auto)")
    p.add_argument("--accept-changed-data", action="store_true",
                   help="evaluate a run on its image folder although its images changed since the run started (data.json)")


def add_test_view_flags(p: argparse.ArgumentParser) -> None:
    """--test-time-flip / --test-time-shift / --test-time-ten-crop, shared by eval and predict and
    spelt as train's flags for the same config fields; None (not given): as the run evaluated itself."""
    switch = argparse.BooleanOptionalAction
    p.add_argument("--test-time-flip", action=switch, default=None,
                   help="average the image's and its mirror image's predictions (default: as the run was evaluated)")
    p.add_argument("--test-time-shift", type=int, default=None, metavar="PIXELS",
                   help="also average every move by up to PIXELS on each axis, borders black as in training's crops "
                        "((2 PIXELS + 1)^2 positions; 0: off; default: as the run was evaluated)")
    p.add_argument("--test-time-ten-crop", action=switch, default=None,
                   help="photo models: average the paper's 10 crops (corners and centre, and their mirror images) "
                        "instead of the centre crop (default: as the run was evaluated)")
    # the spellings before the flags took the config fields' names
    add_deprecated_spelling(p, "--tta", "--test-time-flip", dest="test_time_flip", action=switch, default=None)
    add_deprecated_spelling(p, "--tta-shift", "--test-time-shift", dest="test_time_shift", type=int, default=None)
    add_deprecated_spelling(p, "--ten-crop", "--test-time-ten-crop", dest="test_time_ten_crop", action=switch, default=None)


def view_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The flags' views as the keyword overrides of ``evaluate`` and ``Predictor`` (None: the run's own)."""
    return {"flip": args.test_time_flip, "shift": args.test_time_shift, "ten_crop": args.test_time_ten_crop}


def add_precision_flag(p: argparse.ArgumentParser) -> None:
    """--precision, shared by eval, predict and report: the run's own unless given."""
    from resnetlab.precision import PRECISIONS

    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="autocast precision of the forward passes (default: the run's own, as it evaluated itself; "
                        "fp32: exact fp32 figures)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint or run folder on its dataset",
                       description="Top-1/top-5 accuracy, loss, per-class accuracy, confusion matrix (CSV + PNG) "
                                   "and the most confidently wrong images (PNG). A run folder means its final "
                                   "model (checkpoints/last.pt).")
    p.add_argument("source", metavar="RUN_DIR_OR_CHECKPOINT")
    p.add_argument("--dataset", default=None, help="default: the checkpoint's own dataset")
    p.add_argument("--data-dir", default=None, help="default: the checkpoint's own data folder")
    p.add_argument("--split", choices=("test", "val"), default="test")
    add_test_view_flags(p)
    add_precision_flag(p)
    p.add_argument("--out", default=None, help="folder for the CSV/PNG files (default: beside the checkpoint)")
    add_run_flags(p, batch_default=None)
    p.add_argument("--json", action="store_true",
                   help='print {"top1", "top5", "loss", "n", "per_class", "test_views": {"flip", "shift", "ten_crop"}, '
                        '"views", "precision"} as JSON')
    p.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from resnetlab.evaluation import EvaluationStopped, TestViews, evaluate
    from resnetlab.evaluation.evaluate import files_folder

    try:
        out = args.out if args.out is not None else files_folder(args.source)
        result = evaluate(args.source, dataset=args.dataset, data_dir=args.data_dir, split=args.split, **view_overrides(args),
                          out=out, batch_size=args.batch_size, device=args.device, precision=args.precision,
                          accept_changed_data=args.accept_changed_data)
    except EvaluationStopped as exc:
        print(f"resnetlab: {exc}: nothing written", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps({k: result[k] for k in JSON_KEYS}, indent=2))
        return 0
    views = TestViews(**result["test_views"]).describe()
    print(f"{result['checkpoint']} on {result['dataset']} {result['split']} ({result['n']} images, {result['precision']}, "
          f"{views}): top-1 {result['top1']:.4f}  top-5 {result['top5']:.4f}  loss {result['loss']:.4f}")
    width = max(len(c) for c in result["per_class"])
    for name, acc in result["per_class"].items():
        print(f"  {name:<{width}}  {'-' if math.isnan(acc) else f'{acc:.4f}'}")
    for path in result["files"].values():
        print(f"wrote {path}")
    return 0
