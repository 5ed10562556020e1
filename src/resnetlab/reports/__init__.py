"""Reports: every run and every set of runs readable at a glance.

``report(run_dirs, out)`` turns run folders into figures, a Table 6-style results table and one
index.html; ``sweep(sweep_yaml, out)`` trains a list of runs (resumably) and then reports them.
Modules: runs (reading run folders), plots, tables, predictions (checkpoint on the test split),
html (the page), report, sweep; parallel (a sweep's runs as processes, several at once) and
concurrency (how many fit on the GPU: ``--parallel auto``).
"""

from resnetlab.reports.report import report
from resnetlab.reports.sweep import list_sweeps, load_sweep, sweep

__all__ = ["list_sweeps", "load_sweep", "report", "sweep"]
