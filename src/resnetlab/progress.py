"""Progress bars that suit where they are shown: a terminal, a log file, or a notebook.

``tqdm.auto`` alone serves a notebook badly: without ipywidgets it warns ("TqdmWarning: IProgress
not found") and, as a notebook's output is no terminal, training's bars (``disable=None``: none off a
terminal) never show. Here a notebook gets tqdm's widget when ipywidgets is importable, else the
plain text bar updated in place, and never the warning; elsewhere a bar only on a terminal.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

from tqdm import tqdm as text_bar


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (IPython's ZMQ shell), not a terminal IPython."""
    shell = sys.modules.get("IPython")
    get_ipython = getattr(shell, "get_ipython", None)
    ip = get_ipython() if get_ipython is not None else None
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def progress_bar(iterable: Any = None, *, disable: bool | None = None, **options: Any) -> Any:
    """A tqdm bar over ``iterable`` (tqdm's keywords). ``disable=True`` hides it; None shows it on a
    terminal or in a notebook, not in a log file or a pipe."""
    if disable is None and in_notebook():
        if importlib.util.find_spec("ipywidgets") is not None:
            from tqdm.notebook import tqdm as widget_bar

            return widget_bar(iterable, **{k: v for k, v in options.items() if k != "dynamic_ncols"})
        return text_bar(iterable, file=sys.stdout, disable=False, **options)
    return text_bar(iterable, disable=disable, **options)
