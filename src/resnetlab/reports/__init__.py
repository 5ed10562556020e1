"""Reports: every run and every set of runs readable at a glance.

``report(run_dirs, out)`` turns run folders into figures, a Table 6-style results table and one
index.html. Modules: reading (run folders as reports see them), plots, tables, predictions
(checkpoint on the test split), html (the page), report. Reports read runs and render them;
training many runs is ``resnetlab.sweeps``.
"""

from resnetlab.reports.report import report

__all__ = ["report"]

MOVED_TO_SWEEPS = ("sweep", "list_sweeps", "load_sweep")


def __getattr__(name: str) -> object:
    """``from resnetlab.reports import sweep`` names where sweeps went (they train runs, so they sit above reports)."""
    if name in MOVED_TO_SWEEPS:
        raise ImportError(f"resnetlab.reports.{name} moved to resnetlab.sweeps.{name}: "
                          f"use `from resnetlab.sweeps import {name}` (or resnetlab.{name} for sweep)")
    raise AttributeError(f"module 'resnetlab.reports' has no attribute {name!r}")
