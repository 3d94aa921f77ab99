"""``roboq tasks``: list task names."""

from __future__ import annotations

from omegaconf import DictConfig

from sim import list_tasks
from sim.experts import has_expert


def tasks(cfg: DictConfig) -> int:
    """Print every task name of a family (or all), marking those with a scripted expert."""
    names = list_tasks(cfg.family)
    for name in names:
        print(f"{name}{'  (expert)' if has_expert(name) else ''}")
    print(f"\n{len(names)} tasks; mjcf/<path-to-xml> loads any MuJoCo model.")
    return 0
