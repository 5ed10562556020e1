"""``resnetlab --help`` and every command's ``--help`` answer without importing torch (about two
seconds of a small machine's time): the command modules load the heavy parts when a command runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from resnetlab.cli import COMMAND_MODULES
from resnetlab.cli.data_cmd import DATASETS

PROBE = """
import sys
from resnetlab.cli import main
try:
    main(sys.argv[1:] + ["--help"])
except SystemExit as exc:
    assert exc.code == 0, exc.code
print("torch" in sys.modules, "torchvision" in sys.modules)
"""


@pytest.mark.slow  # a fresh process per command (torch already fills this one): the whole suite runs it
@pytest.mark.parametrize("command", [[], *([name] for name in COMMAND_MODULES), ["data", "info"]], ids=lambda c: " ".join(c) or "resnetlab")
def test_help_answers_without_importing_torch(command: list[str]) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE, *command], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "False False", done.stdout[-500:]
    assert "usage: resnetlab" in done.stdout


def test_the_datasets_named_in_help_are_the_registrys() -> None:
    from resnetlab.data import list_datasets

    assert sorted(DATASETS) == sorted(list_datasets())
