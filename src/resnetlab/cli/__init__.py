"""Command line: parses arguments and calls the Python API; no logic of its own.

Each command lives in ``resnetlab/cli/<name>_cmd.py`` with a ``register(subparsers)`` function.
A ``ResnetlabError`` (and a file-system ``OSError``) becomes one line on stderr and exit code 2,
never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from resnetlab.errors import ResnetlabError

COMMAND_MODULES = ("models", "summary", "data", "recipes", "train", "eval", "predict", "finetune", "export", "responses", "report",
                   "sweep", "serve")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resnetlab",
        description="Reproduce and use the experiments of 'Deep Residual Learning for Image Recognition'.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"resnetlab.cli.{name}_cmd").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed: the command a run records
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ResnetlabError as exc:
        print(f"resnetlab: error: {exc.for_command_line()}", file=sys.stderr)  # options as flags, not keywords
        return 2
    except OSError as exc:  # a file-system fault no write helper named (they say "cannot write <path>")
        where = f" {os.fsdecode(exc.filename)}" if exc.filename is not None else ""
        print(f"resnetlab: error: cannot access{where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("resnetlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
