"""Task names -> simulator adapters: ``metaworld/<task>``, ``dmc/<domain>-<task>``, ``mjcf/<path>``."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from sim.base import MujocoEnv, TaskError

FAMILIES = ("metaworld", "dmc", "mjcf")


def list_tasks(family: str | None = None) -> list[str]:
    """Every task name of a family (all families if None); mjcf takes any model path."""
    names: list[str] = []
    if family in (None, "metaworld"):
        from sim.metaworld_env import TASKS

        names += [f"metaworld/{t}" for t in TASKS]
    if family in (None, "dmc"):
        from sim.dmc_env import TASKS

        names += [f"dmc/{t}" for t in TASKS]
    return names


def is_task(task: str) -> bool:
    """Whether ``task`` names a simulated task (a known metaworld/dmc task, or an existing MJCF file)."""
    family, _, name = str(task).partition("/")
    if family == "mjcf":
        return Path(name).is_file()
    canonical = f"{family}/{name.removesuffix('-v3')}" if family == "metaworld" else str(task)
    return family in FAMILIES and canonical in list_tasks(family)


def _unknown(task: str, family: str) -> TaskError:
    known = list_tasks(family)
    close = difflib.get_close_matches(task, known, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return TaskError(f"unknown task {task!r}.{hint} {family} tasks: {', '.join(known)}")


def default_camera(task: str) -> str | int:
    """The camera a task family renders from by default (videos, pixel observations)."""
    family = str(task).partition("/")[0]
    cls: type[MujocoEnv]
    if family == "metaworld":
        from sim.metaworld_env import MetaWorldEnv

        cls = MetaWorldEnv
    elif family == "dmc":
        from sim.dmc_env import DMCEnv

        cls = DMCEnv
    else:
        from sim.mjcf_env import MJCFEnv

        cls = MJCFEnv
    return cls.default_camera


def make_env(task: str, **kwargs: Any) -> MujocoEnv:
    """Build the adapter for ``task``; keyword arguments are the env settings (see configs/env)."""
    family, _, name = str(task).partition("/")
    if family not in FAMILIES or not name:
        raise TaskError(
            f"unknown task {task!r}: expected one of metaworld/<task>, dmc/<domain>-<task>, mjcf/<path.xml>"
        )
    if family == "metaworld":
        from sim.metaworld_env import TASKS, MetaWorldEnv

        name = name.removesuffix("-v3")
        if name not in TASKS:
            raise _unknown(task, family)
        kwargs.pop("success_reward", None)
        return MetaWorldEnv(name, **kwargs)
    if family == "dmc":
        from sim.dmc_env import TASKS, DMCEnv

        if name not in TASKS:
            raise _unknown(task, family)
        domain, _, dmc_task = name.partition("-")
        return DMCEnv(domain, dmc_task, **kwargs)
    from sim.mjcf_env import MJCFEnv

    kwargs.pop("success_reward", None)
    return MJCFEnv(name, **kwargs)
