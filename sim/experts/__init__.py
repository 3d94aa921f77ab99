"""Scripted experts: Meta-World's own policies for all 50 tasks, hand-written dm_control controllers."""

from __future__ import annotations

import warnings
from typing import Protocol

import numpy as np

from sim.base import MujocoEnv, TaskError

DMC_EXPERT_TASKS = (
    "reacher-easy",
    "reacher-hard",
    "cartpole-balance",
    "cartpole-balance_sparse",
    "cartpole-swingup",
    "cartpole-swingup_sparse",
)


class Expert(Protocol):
    def reset(self) -> None: ...

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Normalised action in [-1, 1] for the current observation."""
        ...


class MetaWorldExpert:
    """Meta-World's scripted policy for the task, acting on the 39-D state."""

    def __init__(self, env: MujocoEnv) -> None:
        from metaworld.policies import ENV_POLICY_MAP

        self._policy = ENV_POLICY_MAP[env.task.removeprefix("metaworld/") + "-v3"]()  # type: ignore[abstract]

    def reset(self) -> None:
        pass

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        with warnings.catch_warnings():  # some policies warn that their gains exceed the action range
            warnings.simplefilter("ignore", UserWarning)
            return np.clip(self._policy.get_action(obs["state"]), -1.0, 1.0)


class PhysicsExpert:
    """A dm_control controller that reads privileged simulator state, not the observation."""

    def __init__(self, controller) -> None:
        self._controller = controller

    def reset(self) -> None:
        self._controller.reset()

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return np.clip(self._controller.act(), -1.0, 1.0)


def has_expert(task: str) -> bool:
    family, _, name = task.partition("/")
    return family == "metaworld" or (family == "dmc" and name in DMC_EXPERT_TASKS)


def make_expert(env: MujocoEnv) -> Expert:
    """The scripted expert for ``env``'s task; TaskError if there is none."""
    if not has_expert(env.task):
        raise TaskError(
            f"no scripted expert for {env.task}: experts exist for every metaworld/<task> and for "
            f"{', '.join('dmc/' + t for t in DMC_EXPERT_TASKS)}"
        )
    if env.family == "metaworld":
        return MetaWorldExpert(env)
    from sim.experts import dmc

    controller = dmc.ReacherExpert if env.task.startswith("dmc/reacher") else dmc.CartpoleExpert
    return PhysicsExpert(controller(env.physics, env.action_repeat))  # type: ignore[attr-defined]  # a DMCEnv
