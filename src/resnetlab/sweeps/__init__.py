"""Sweeps: many trainings from one file, resumable, then one report.

``sweep(sweep_yaml, out)`` trains a list of runs and renders them with ``reports.report``.
Modules: sweep (the sweep file and the order of its runs), parallel (runs as ``resnetlab train``
processes side by side), concurrency (``--parallel auto``: how many fit in the GPUs' memory),
placement (which GPU each child gets). The shipped sweep files sit beside them (``*.yaml``).
"""

from resnetlab.sweeps.sweep import list_sweeps, load_sweep, sweep

__all__ = ["list_sweeps", "load_sweep", "sweep"]
