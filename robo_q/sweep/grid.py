"""A sweep's grid: which command-line settings are axes, the runs they make, and checks before Ray starts.

``roboq sweep`` takes every ``roboq train`` setting. A setting given as a list (``task=[a,b]``,
``agent=[cqn_as,bc]``, ``seed=[0,1]``, ``agent.lr=[1e-4,3e-4]``) is an axis of the grid; every other
setting goes to every run. Settings that are lists in ``roboq train`` (``env.cameras``,
``pixels.cameras``) are swept with a list of lists (``env.cameras=[[corner2],[corner3]]``).

The grid is read from the command line, not from the composed config: Hydra merges a list of config
group options (``agent=[cqn_as,bc]``) into one agent config, so the composed config no longer says
which agents were asked for.
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from robo_q.rundir import slug

# settings of the sweep itself (configs/sweep.yaml); everything else is a `roboq train` setting
OWN_KEYS = ("name", "root", "progress", "ray", "run")
# the sweep decides these for every run
RESERVED_KEYS = {"out": "every run's directory is <sweep>/runs/<run>", "resume": "a sweep resumes its runs itself"}
# `roboq train` settings whose value is a list: a list is a value here, a list of lists an axis
LIST_SETTINGS = ("env.cameras", "pixels.cameras")
# run names: these axes first, in this order
NAMED_AXES = ("task", "agent", "seed")


class SweepError(ValueError):
    """Bad sweep input (an unknown task or agent, an unreachable Ray address, a conflicting sweep)."""


@dataclass
class RunSpec:
    """One run of the grid: its name (the directory under <sweep>/runs/) and its `roboq train` overrides."""

    name: str
    task: str
    agent: str
    seed: int
    grid: dict[str, Any] = field(default_factory=dict)  # this run's value on every axis
    overrides: list[str] = field(default_factory=list)  # `roboq train` key=value, without out=

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSpec:
        return cls(**{k: data[k] for k in ("name", "task", "agent", "seed", "grid", "overrides")})


@dataclass
class Plan:
    """What the command line asks for: the axes, the settings shared by every run, the runs."""

    axes: dict[str, list[Any]]
    common: list[str]
    runs: list[RunSpec]


def _own(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in OWN_KEYS)


_UNQUOTED = re.compile(r"^[A-Za-z_/][\w/.\-+:@]*$")
_NOT_STRINGS = {"true", "false", "null", "nan", "inf", "-inf", "none"}


def format_value(value: Any) -> str:
    """A value in Hydra's override grammar (what ``key=<this>`` parses back to ``value``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{format_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if _UNQUOTED.match(text) and text.lower() not in _NOT_STRINGS:
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _value_label(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "-".join(_value_label(v) for v in value)
    return format_value(value).strip("'")


def _list_setting(key: str, defaults: DictConfig) -> bool:
    if key in LIST_SETTINGS:
        return True
    try:
        return isinstance(OmegaConf.select(defaults, key, throw_on_missing=False), ListConfig)
    except OmegaConfBaseException:
        return False


def parse_overrides(overrides: Sequence[str], train_defaults: DictConfig) -> tuple[dict[str, list[Any]], list[str]]:
    """Split the command line into grid axes (key -> values) and the overrides every run gets.

    The sweep's own settings (name, root, progress, ray.*, run.*) are in neither.
    """
    axes: dict[str, list[Any]] = {}
    common: dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if _own(key):
            continue
        if key in RESERVED_KEYS:
            raise SweepError(f"{key}= is not a sweep setting: {RESERVED_KEYS[key]}")
        value = override.value()
        plain = not (override.is_add() or override.is_delete() or override.is_force_add() or override.package)
        if plain and isinstance(value, list) and not _list_setting(key, train_defaults):
            if not value:
                raise SweepError(f"{key}=[] is an empty grid axis")
            if any(isinstance(v, dict) for v in value):
                raise SweepError(f"{key}: a grid axis takes plain values, not dictionaries")
            axes.pop(key, None)  # the last mention of a key wins, as in Hydra
            common.pop(key, None)
            axes[key] = list(value)
        elif plain and isinstance(value, list) and value and all(isinstance(v, list) for v in value):
            axes.pop(key, None)
            common.pop(key, None)
            axes[key] = list(value)  # a list of lists sweeps a list-valued setting
        else:
            axes.pop(key, None)
            common.pop(key, None)
            common[key] = str(override.input_line)
    return axes, list(common.values())


def expand(cfg: DictConfig, axes: dict[str, list[Any]], common: list[str]) -> list[RunSpec]:
    """Every combination of the axes, named ``<task>_<agent>_seed<k>[_<axis><value>...]``."""
    order = [k for k in NAMED_AXES if k in axes] + [k for k in axes if k not in NAMED_AXES]
    runs: list[RunSpec] = []
    names: set[str] = set()
    for values in itertools.product(*(axes[k] for k in order)):
        point = dict(zip(order, values, strict=True))
        task = str(point.get("task") or cfg.task or cfg.default_task)
        agent = str(point.get("agent", cfg.agent.name))
        seed = point.get("seed", cfg.seed)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise SweepError(f"seed values must be integers, got {seed!r}")
        extra = "".join(
            f"_{slug(k.rsplit('.', 1)[-1] + _value_label(v))}" for k, v in point.items() if k not in NAMED_AXES
        )
        name = base = f"{slug(task)}_{slug(agent)}_seed{seed}{extra}"
        suffix = 1
        while name in names:
            suffix += 1
            name = f"{base}~{suffix}"
        names.add(name)
        overrides = [*common, *(f"{k}={format_value(v)}" for k, v in point.items())]
        runs.append(RunSpec(name, task, agent, seed, point, overrides))
    return runs


# -- checks before anything starts -------------------------------------------------------------------
def known_agents() -> list[str]:
    """The agent names: configs/agent/*.yaml."""
    from robo_q.cli import config_dir

    return sorted(p.stem for p in (config_dir() / "agent").glob("*.yaml"))


def check_agents(agents: Sequence[str]) -> None:
    known = known_agents()
    unknown = [a for a in dict.fromkeys(agents) if a not in known]
    if unknown:
        raise SweepError(f"unknown agent {', '.join(map(repr, unknown))}: the agents are {', '.join(known)}")


def check_task(task: str) -> None:
    """An unknown task fails here with the simulator registry's message (suggestions, the task list)."""
    from sim import is_task, make_env

    if not is_task(task) or task.startswith("mjcf/"):
        make_env(task).close()  # raises sim.TaskError naming the task; mjcf: the model must load


def check_demos(run: RunSpec, path: str | None, stores: dict[str, str]) -> None:
    """A run collects expert demos (its task needs an expert) or reads a store of its own task."""
    from robo_q.data import EpisodeStore
    from sim.experts import has_expert

    if not path:
        if not has_expert(run.task):
            raise SweepError(
                f"{run.task} has no scripted expert to collect demos: pass demos.path=<store> with demonstrations"
            )
        return
    if path not in stores:
        stores[path] = EpisodeStore.open(path).task
    if stores[path] != run.task:
        raise SweepError(f"run {run.name}: demos.path={path} holds {stores[path]} demos, not {run.task}")


def validate(runs: Sequence[RunSpec]) -> None:
    """Unknown agents and tasks, missing demos and settings that do not compose fail before Ray starts."""
    from robo_q.cli import compose_config

    check_agents([r.agent for r in runs])
    for task in dict.fromkeys(r.task for r in runs):
        check_task(task)
    stores: dict[str, str] = {}
    for run in runs:
        try:
            composed = compose_config("train", run.overrides)
        except (HydraException, OmegaConfBaseException) as err:
            raise SweepError(f"run {run.name}: bad settings: {err}") from err
        check_demos(run, composed.demos.path, stores)


def plan(cfg: DictConfig, overrides: Sequence[str]) -> Plan:
    """The runs ``overrides`` (the command line after ``roboq sweep``) ask for, checked; starts nothing."""
    from robo_q.cli import compose_config

    axes, common = parse_overrides(overrides, compose_config("train", []))
    runs = expand(cfg, axes, common)
    validate(runs)
    return Plan(axes, common, runs)


def command_line_overrides(cfg: DictConfig) -> list[str]:
    """The overrides of ``roboq sweep ...`` from ``sys.argv``, checked against the composed ``cfg``."""
    from robo_q.cli import compose_config

    args = [a for a in sys.argv[1:] if a not in ("-h", "--help")]
    words = 0
    while words < len(args) and "=" not in args[words] and not args[words].startswith("-"):
        words += 1
    overrides = args[words:]
    try:
        same = args[:words] == ["sweep"] and compose_config("sweep", overrides) == cfg
    except (HydraException, OmegaConfBaseException):
        same = False
    if not same:
        raise SweepError(
            "the sweep's grid comes from its command line (Hydra merges agent=[a,b] into one agent config): "
            "called with a config alone, pass the key=value overrides too: sweep(cfg, overrides)"
        )
    return overrides


def sweep_dir(cfg: DictConfig, name: str) -> Path:
    return Path(str(cfg.root)) / name


def check_name(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise SweepError(f"name={name!r}: a sweep name is one directory name (the sweep goes to <root>/<name>)")
    return name
