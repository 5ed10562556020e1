"""The one exception type for mistakes the user can fix.

The command line turns a ``ResnetlabError`` into a one-line message and a non-zero exit, with
no traceback: anything else that escapes is a bug in resnetlab and keeps its traceback.
"""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Mapping
from typing import Any, TypeVar

SHOWN_CHARS = 100  # longest value echoed in a message
T = TypeVar("T")


class ResnetlabError(Exception):
    """Bad input (a path, a name, an option, a file): the message says what and what to do."""


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
