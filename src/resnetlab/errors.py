"""The one exception type for mistakes the user can fix.

The command line turns a ``ResnetlabError`` into a one-line message and a non-zero exit, with
no traceback: anything else that escapes is a bug in resnetlab and keeps its traceback.
"""

from __future__ import annotations

import difflib
import re
import reprlib
from collections.abc import Mapping
from typing import Any, TypeVar

SHOWN_CHARS = 100  # longest value echoed in a message
T = TypeVar("T")


class ResnetlabError(Exception):
    """Bad input (a path, a name, an option, a file): the message says what and what to do.

    An option a message names (``option``) reads as the Python keyword (``overwrite=True``) in
    ``str()``, and as the flag (``--overwrite``) where the command line prints it."""

    def __str__(self) -> str:
        return _OPTION.sub(lambda m: _keyword(*m.groups()), super().__str__())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def for_command_line(self) -> str:
        """The message with each option spelled as the command line's flag."""
        return _OPTION.sub(lambda m: _flag(*m.groups()), super().__str__())


_OPTION = re.compile("\x1f([A-Za-z_]+)\x1e([01])\x1e(.*?)\x1f", re.DOTALL)  # name, 1 if a value, the value's text
_FLAG_NAMES = {"config_file": "config", "model_options": "model-option"}  # keywords whose flag has another name
_NO_VALUE = object()


def option(name: str, value: Any = _NO_VALUE, *, metavar: str | None = None) -> str:
    """An option inside a ``ResnetlabError`` message, spelled for whoever reads it: ``option("overwrite",
    True)`` is ``overwrite=True`` from Python and ``--overwrite`` on the command line;
    ``option("image_size", 32)``: ``image_size=32`` / ``--image-size 32``; ``option("data_dir",
    metavar="DIR")``: ``data_dir=DIR`` / ``--data-dir DIR``; ``option("batch_size")``: the name alone."""
    if metavar is not None:
        return f"\x1f{name}\x1e1\x1e{metavar}\x1f"
    if value is _NO_VALUE:
        return f"\x1f{name}\x1e0\x1e\x1f"
    return f"\x1f{name}\x1e1\x1e{_encoded(value)}\x1f"


def _encoded(value: Any) -> str:
    """True/False/None kept as their words, text quoted for Python (``_flag`` unquotes it)."""
    return repr(value) if isinstance(value, str) else str(value)


def _keyword(name: str, has_value: str, value: str) -> str:
    return f"{name}={value}" if has_value == "1" else name


def _flag(name: str, has_value: str, value: str) -> str:
    flag = _FLAG_NAMES.get(name, name.replace("_", "-"))
    if has_value == "0" or value == "True":
        return f"--{flag}"
    if value == "False":
        return f"--no-{flag}"
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    return f"--{flag} {'none' if value == 'None' else value}"


_REPR = reprlib.Repr()  # keyword arguments only from Python 3.12
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxstring, _REPR.maxother = 3, 8, 8, SHOWN_CHARS, SHOWN_CHARS


def shown(value: Any) -> str:
    """``repr(value)`` for a message, cut to about ``SHOWN_CHARS`` characters and never built whole:
    a value from a file or a flag may be megabytes long."""
    text = _REPR.repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def lookup(table: Mapping[str, T], name: str, what: str, listing: str) -> T:
    """``table[name]``, or one message naming the unknown ``what``, the closest known names and
    ``listing`` (where the known names are: a list, or the command that prints them)."""
    try:
        return table[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(name, list(table), n=3, cutoff=0.6) if isinstance(name, str) else []
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ResnetlabError(f"unknown {what} {shown(name)}.{hint} {listing}") from None
