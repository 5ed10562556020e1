"""The command a run records in summary.json: what to type to train the same run again.

From the command line it is the command as typed; from Python it is the ``resnetlab.train(...)``
call with its keywords, never the interpreter's argv (a notebook's is ``ipykernel_launcher.py -f
/tmp/...json``, which repeats nothing).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from resnetlab.training.config import FIELDS, NOT_RECIPE, TrainConfig, recipe_changes


def cli_command(argv: Sequence[str]) -> str:
    """``resnetlab train --lr 0.05 ...``: the arguments as typed, quoted for a shell."""
    return shlex.join(["resnetlab", *argv])


def python_call(keywords: dict[str, Any]) -> str:
    """``resnetlab.train(model='resnet20', epochs=1)``: the keywords in the order given."""
    return "resnetlab.train(" + ", ".join(f"{k}={v!r}" for k, v in keywords.items()) + ")"


def config_call(config: TrainConfig) -> str:
    """The call that resolves to ``config``: its recipe, what it trains on and where, and every
    field it changed from the recipe (all that differ from the defaults when the recipe is unknown)."""
    changes = recipe_changes(config)
    defaults = TrainConfig()
    keywords: dict[str, Any] = {"recipe": config.recipe} if config.recipe else {}
    for key in FIELDS:
        value = getattr(config, key)
        settles = key in NOT_RECIPE if changes is not None else key != "recipe"
        if key in ("model", "dataset", "out") or (settles and key != "recipe" and value != getattr(defaults, key)):
            keywords[key] = value
    return python_call({**keywords, **(changes or {})})
