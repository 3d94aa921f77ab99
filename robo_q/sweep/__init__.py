"""Sweeps of `roboq train` runs on Ray (`roboq sweep`) and their report with 95% Wilson intervals (`roboq report`).

``grid`` turns the command line into runs and checks them, ``driver`` runs them as Ray tasks,
``runner`` is one run's task, ``rundirs`` what a run directory says about the run, ``stats`` the
interval, ``report`` the tables and curves. Importing this package imports neither Ray nor torch.
"""

from robo_q.sweep.grid import RunSpec, SweepError
from robo_q.sweep.stats import wilson

__all__ = ["RunSpec", "SweepError", "wilson"]
