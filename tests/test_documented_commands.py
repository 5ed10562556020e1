"""Every command the README and docs/ show is accepted: the README promises that every option it
shows works, and a renamed flag or a recipe change would otherwise leave it quietly wrong.

Commands are taken from the Markdown code blocks and from inline code that starts with
``resnetlab``, ``python benchmarks/`` or ``python experiments/``; placeholders (``N``, ``S``,
``RUN``) become sample values.
``train`` commands are also resolved against their recipe, so an unknown model, option or value fails.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import shlex
import sys
from pathlib import Path
from types import ModuleType

import pytest

from resnetlab.cli import build_parser
from resnetlab.cli.train_cmd import overrides_from
from resnetlab.training import resolve_config

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PLACEHOLDERS = {"N": "1", "S": "0", "RUN": "runs/r20", "MODEL": "resnet20", "DIR": "data", "FILE": "config.yaml", "IMAGE": "cat.jpg"}
CODE_BLOCK = re.compile(r"```[a-z]*\n(.*?)```", re.S)
INLINE = re.compile(r"`((?:resnetlab|python (?:benchmarks|experiments)/)[^`]*)`")
SCRIPT_FOLDERS = ("benchmarks/", "experiments/")  # scripts beside the package, each with parse_args()


def _argv(command: str) -> list[str] | None:
    """The words after the program (``resnetlab``), or from the script on (``python benchmarks/X.py``), or None."""
    words = shlex.split(command.replace("\\\n", " "), comments=True)
    for i, word in enumerate(words):
        if word.endswith("resnetlab") and (i == 0 or words[i - 1] == "-m"):
            rest = words[i + 1:]
            return rest if rest and not rest[0].startswith("[") else None
        if word.startswith(SCRIPT_FOLDERS) and word.endswith(".py"):
            return words[i:]
    return None


def documented_commands() -> list[tuple[str, list[str]]]:
    found = []
    for doc in DOCUMENTS:
        text = doc.read_text(encoding="utf-8")
        lines = [line for block in CODE_BLOCK.findall(text) for line in block.replace("\\\n", " ").splitlines()]
        lines += [" ".join(c.split()) for c in INLINE.findall(CODE_BLOCK.sub("", text)) if " -" in c]
        for line in lines:
            if "[" in line or "--help" in line:  # a usage synopsis or a help page, not a command
                continue
            argv = _argv(line)
            if argv:
                argv = [PLACEHOLDERS.get(w, w) for w in argv]
                found.append((f"{doc.name}: {line.strip()[:90]}", argv))
    return found


COMMANDS = documented_commands()


def test_every_main_command_has_a_documented_example() -> None:
    """The parser below checks each example; this checks that the reading found them all."""
    shown = {argv[0] for _, argv in COMMANDS if argv}
    assert {"train", "eval", "predict", "finetune", "export", "report", "responses", "sweep", "data", "models"} <= shown, sorted(shown)
    assert any(argv[:1] == ["train"] and "fast" in argv for _, argv in COMMANDS)


@functools.cache
def _benchmark(script: str) -> ModuleType:
    """A benchmark or experiment script loaded once as a module (neither folder is a package)."""
    spec = importlib.util.spec_from_file_location(Path(script).stem, REPO / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _benchmark_args(script: str, argv: list[str], monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(sys, "argv", [script, *argv])
    return _benchmark(script).parse_args()


@pytest.mark.parametrize("argv", [argv for _, argv in COMMANDS], ids=[name for name, _ in COMMANDS])
def test_documented_command_is_accepted(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    if argv[0].startswith(SCRIPT_FOLDERS):
        _benchmark_args(argv[0], argv[1:], monkeypatch)  # argparse exits on an unknown flag
        return
    args = build_parser().parse_args(argv)
    assert getattr(args, "func", None), argv
    if args.command == "train" and not args.resume:
        overrides = overrides_from(args)
        config_file = args.config_file if args.config_file and Path(args.config_file).is_file() else None  # the reader's own file
        config = resolve_config(overrides.pop("recipe", None), config_file, overrides)
        assert {k: getattr(config, k) for k in overrides} == overrides  # every flag shown takes effect
