"""What several commands' flags share: ``--model-option`` parsing and deprecated spellings.

A flag renamed to the one name its idea has everywhere keeps its old spelling for a while: it
still works, is hidden from ``--help``, and says on stderr which spelling to use instead.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from resnetlab.config_values import parse_key_values


def parse_options(pairs: list[str]) -> dict[str, object]:
    """``--model-option KEY=VALUE`` pairs -> ``create_model`` keyword options, typed as config values are."""
    return parse_key_values(pairs, "--model-option")


def add_deprecated_spelling(p: argparse.ArgumentParser, old: str, new: str, **kwargs: Any) -> None:
    """``old`` as a hidden flag doing what ``new`` does (same ``dest`` and action), with a note to use ``new``."""
    base = kwargs.pop("action", "store")
    action_class = base if isinstance(base, type) else p._registry_get("action", base, base)

    class Deprecated(action_class):  # type: ignore[misc, valid-type]
        def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                     option_string: str | None = None) -> None:
            use = f"--no-{new[2:]}" if option_string and option_string.startswith("--no-") else new
            print(f"resnetlab: {option_string} is a deprecated spelling: use {use}", file=sys.stderr)
            super().__call__(parser, namespace, values, option_string)

    p.add_argument(old, action=Deprecated, help=argparse.SUPPRESS, **kwargs)
