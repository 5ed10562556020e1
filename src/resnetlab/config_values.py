"""Every config value checked where it enters: YAML read safely, each value of its field's type.

YAML anchors and aliases are refused: a config needs none, and a few nested aliases ("billion
laughs") expand into gigabytes. Types follow the dataclass hints strictly, because Python's
truthiness would make ``quiet: "no"`` true and ``seed: 1.5`` a different run than it says.
Values echoed in messages are cut to ``errors.SHOWN_CHARS`` characters (``errors.shown``).
"""

from __future__ import annotations

import math
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from resnetlab.errors import SHOWN_CHARS, ResnetlabError, shown

TRUE_WORDS, FALSE_WORDS = ("true", "yes", "on"), ("false", "no", "off")
SEED_LIMIT = 2**63  # torch takes 64-bit seeds; below 2**63 a seed is one whatever signedness reads it
GENERATOR_SEEDS = 2**64  # what torch.Generator.manual_seed takes: [0, 2**64) wraps every derived seed


def check_seed(value: Any, what: str = "seed") -> int:
    """A seed as torch takes it: a whole number in [0, 2**63), checked where it enters (a flag, a
    config, ``load_dataset``) rather than where a generator overflows on it."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < SEED_LIMIT:
        raise ResnetlabError(f"{what} must be a whole number from 0 to 2**63 - 1 ({SEED_LIMIT - 1}), got {shown(value)}")
    return value


def generator_seed(value: int) -> int:
    """A seed derived by arithmetic (``seed * 100_003 + epoch``) as ``torch.Generator.manual_seed``
    takes it: wrapped into 64 bits, so a large seed never overflows; every seed that fitted before is
    the same number, so runs keep their order and augmentation."""
    return value % GENERATOR_SEEDS


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases (``*name``) before anything is expanded."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.YAMLError(f"YAML aliases (*{shown(event.anchor)[1:-1]}) are not allowed in a config "
                                 f"(line {event.start_mark.line + 1}): write the values out")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        """A mapping that names no key twice: YAML would keep the last one silently."""
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.YAMLError(f"the key {shown(key)} is given twice (lines {seen[key]} and {line}): keep one")
            seen.setdefault(key, line) if isinstance(key, (str, int, float, bool)) else None
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load`` without aliases; a syntax error becomes one message naming ``source``."""
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ResnetlabError(f"{source} is not valid YAML: {first[:2 * SHOWN_CHARS]}") from None


def parse_key_values(pairs: list[str], flag: str) -> dict[str, Any]:
    """``["epochs=2", "shortcut=B", "zero_init_residual=true"]`` -> ``{"epochs": 2, "shortcut": "B",
    "zero_init_residual": True}``: each value read as a YAML scalar, as in a config file, so that
    ``--set`` and ``--model-option`` type their values alike (text YAML cannot read stays text).
    Dashes in a key become underscores, as in the flags."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ResnetlabError(f"{flag} {shown(pair)} must look like KEY=VALUE, e.g. {flag} {_EXAMPLES.get(flag, 'key=value')}")
        if not text.strip():  # as train refuses --epochs '': an empty value is a slip, not "unset"
            raise ResnetlabError(f"{flag} {shown(pair)} has no value: give one ({flag} {key}=null unsets it)")
        try:
            values[key] = load_yaml(text, f"{flag} {key}")
        except ResnetlabError:
            values[key] = text
    return values


_EXAMPLES = {"--set": "epochs=2", "--model-option": "shortcut=B"}


def read_yaml_file(path: Path, what: str) -> Any:
    """A YAML file's content, with one message for a missing, unreadable or non-UTF-8 file."""
    if not path.is_file():
        raise ResnetlabError(f"{what} {path} does not exist")
    return load_yaml(read_text(path, what), f"{what} {path}")


def read_text(path: Path, what: str) -> str:
    """A UTF-8 text file's content; a file in another encoding or unreadable is one message."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ResnetlabError(f"{what} {path} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    except OSError as exc:
        raise ResnetlabError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def check_values(values: dict[str, Any], hints: dict[str, Any], source: str) -> dict[str, Any]:
    """``values`` with each one checked against (and converted to) its field's type hint."""
    return {key: check_value(key, value, hints[key], source) if key in hints else value for key, value in values.items()}


def check_value(key: str, value: Any, hint: Any, source: str) -> Any:
    """``value`` as the type ``hint`` names (``int``, ``float``, ``bool``, ``str``, ``list[float]``,
    ``dict``, or one of those ``| None``), else a ``ResnetlabError`` naming the key and ``source``."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
    converted = _convert(value, hint)
    if converted is _INVALID:
        where = f" in {source}" if source else ""
        raise ResnetlabError(f"{key} must be {_describe(hint)}, got {shown(value)}{where}")
    return converted


_INVALID = object()


def _convert(value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if hint is bool:
        return _boolean(value)
    if hint is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value if isinstance(value, int) and not isinstance(value, bool) else _INVALID
    if hint is float:
        return value if _is_number(value) else _INVALID
    if hint is str:
        return value if isinstance(value, str) else _INVALID
    if origin is list:
        items = value if isinstance(value, list) else [value] if _is_number(value) else None
        return [float(v) for v in items] if items is not None and all(_is_number(v) for v in items) else _INVALID
    if origin is dict or hint is dict:
        return value if isinstance(value, dict) and all(isinstance(k, str) for k in value) else _INVALID
    return value  # a type this checker does not know: left to validate()


def _boolean(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    return _INVALID


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if hint is bool:
        return "true or false"
    if hint is int:
        return "a whole number"
    if hint is float:
        return "a finite number"
    if hint is str:
        return "a text (quote it in YAML)"
    if origin is list:
        return "a list of numbers"
    return "a mapping of names to values"
