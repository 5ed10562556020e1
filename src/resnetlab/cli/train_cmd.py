"""``resnetlab train``: a flag for every TrainConfig field, then ``resnetlab.training.train``.

Flags are generated from the dataclass, so a new config field is a new flag with no CLI change.
Only flags given on the command line override the recipe and the config file.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import typing
from typing import Any

from resnetlab.cli.flags import parse_options
from resnetlab.errors import ResnetlabError
from resnetlab.runs import RunFolder
from resnetlab.training.config import FIELDS, TrainConfig, list_recipes

_SPECIAL = {"model_options", "recipe"}  # flags with their own definition below


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model and write a run folder (resumable)",
                       description="Train a registered model. Defaults come from --recipe (paper unless "
                                   "given), then --config FILE, then the flags below.")
    p.add_argument("--recipe", choices=list_recipes(), default=argparse.SUPPRESS, help="recipe (default: paper)")
    p.add_argument("--config", dest="config_file", default=None, metavar="FILE", help="YAML file of config fields")
    p.add_argument("--model-option", dest="model_options", action="append", default=argparse.SUPPRESS,
                   metavar="KEY=VALUE", help="model option, e.g. shortcut=B (repeatable)")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="DIR",
                   help="continue the run in DIR (or --out) from checkpoints/last.pt")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in the --out folder")
    p.add_argument("--accept-changed-data", action="store_true",
                   help="--resume: go on although images were added to or removed from the image folder (logged)")
    add_config_flags(p, exclude=_SPECIAL)
    p.set_defaults(func=run_train)


def add_config_flags(p: argparse.ArgumentParser, exclude: set[str] = frozenset()) -> None:
    """One flag per TrainConfig field (except ``exclude``), its help from the field's metadata."""
    hints = typing.get_type_hints(TrainConfig)
    for name in FIELDS:
        if name not in exclude:
            add_field_flag(p, name, hints[name], FIELDS[name].metadata.get("help", ""))


def add_field_flag(p: argparse.ArgumentParser, name: str, hint: Any, description: str = "") -> None:
    flag = "--" + name.replace("_", "-")
    default = FIELDS[name].default
    if default is dataclasses.MISSING:
        default = FIELDS[name].default_factory()  # type: ignore[misc]
    help_text = f"{description} (base default {default!r}; a recipe may change it)".replace("%", "%%").lstrip()
    args = typing.get_args(hint)
    base = next((a for a in args if a is not type(None)), hint) if args and type(None) in args else hint
    if base is bool:
        p.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text)
    elif typing.get_origin(hint) is list:
        p.add_argument(flag, nargs="*", type=float, default=argparse.SUPPRESS, help=help_text)
    else:
        convert = _number if base is float else base
        nullable = type(None) in args
        p.add_argument(flag, type=_nullable(convert) if nullable else convert, default=argparse.SUPPRESS,
                       help=help_text + (" ('none' to unset)" if nullable else ""))


def _number(text: str) -> int | float:
    """'5000' -> 5000 (a count), '0.1' -> 0.1 (a fraction)."""
    value = float(text)
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


_number.__name__ = "number"  # argparse names the type in its message: "invalid number value: 'abc'"


def _nullable(convert: Any) -> Any:
    def parse(text: str) -> Any:
        return None if text.lower() in ("none", "null") else convert(text)

    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields given on the command line (and nothing else)."""
    values = {k: v for k, v in vars(args).items() if k in FIELDS}
    if "model_options" in values:
        values["model_options"] = parse_options(values["model_options"])
    return values


def run_train(args: argparse.Namespace) -> int:
    from resnetlab.training import TrainingInterrupted, resolve_config
    from resnetlab.training.command import cli_command
    from resnetlab.training.run import train

    overrides = overrides_from(args)
    recipe = overrides.pop("recipe", None)
    config_file = args.config_file
    resume: str | bool = False
    if args.resume:  # the run's own config.yaml, then the flags given (train() refuses what a resume may not change)
        resume = args.resume if isinstance(args.resume, str) else overrides.get("out") or ""
        if not resume:
            raise ResnetlabError("--resume needs the run folder: --resume DIR (or --out DIR)")
        overrides["out"] = resume
        saved = RunFolder(resume).config_file
        config_file = config_file or (saved if saved.is_file() else None)
    config = resolve_config(recipe, config_file, overrides)
    try:
        summary = train(config, resume=resume, overwrite=args.overwrite, accept_changed_data=args.accept_changed_data,
                        command=cli_command(getattr(args, "argv", sys.argv[1:])))
    except TrainingInterrupted as exc:
        print(f"resnetlab: {exc}\ncontinue with: resnetlab train --resume {config.out}", file=sys.stderr)
        return 130
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # torchrun: one report, from rank 0
    final = summary["final"]
    print(f"{summary['model']} on {summary['dataset']}: test accuracy {final['test_acc']:.4f} "
          f"(loss {final['test_loss']:.4f}) after {summary['epochs']} epochs, {summary['iterations']} iterations; "
          f"run folder {config.out}")
    return 0
