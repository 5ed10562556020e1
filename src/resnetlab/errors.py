"""The one exception type for mistakes the user can fix.

The command line turns a ``ResnetlabError`` into a one-line message and a non-zero exit, with
no traceback: anything else that escapes is a bug in resnetlab and keeps its traceback.
"""

from __future__ import annotations


class ResnetlabError(Exception):
    """Bad input (a path, a name, an option, a file): the message says what and what to do."""
