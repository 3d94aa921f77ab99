"""dm_control suite tasks behind the robo_q interface."""

from __future__ import annotations

import math
from importlib.metadata import version

import mujoco
import numpy as np
from dm_control import suite

from sim.base import MujocoEnv

TASKS: tuple[str, ...] = tuple(f"{domain}-{task}" for domain, task in suite.ALL_TASKS)


class DMCEnv(MujocoEnv):
    """``dmc/<domain>-<task>``: flattened suite observation, dense reward and action repeat 2 by default.

    Success for a step is the suite's per-step reward >= ``success_reward`` (all suite rewards lie
    in [0, 1]; for reacher that is the finger inside the target).
    """

    family = "dmc"
    default_reward = "dense"
    default_action_repeat = 2
    default_camera = 0

    def __init__(self, domain: str, task: str, *, success_reward: float = 0.9, **kwargs) -> None:
        self._env = suite.load(domain, task, task_kwargs={"random": 0})
        self.success_reward = float(success_reward)
        super().__init__(f"dmc/{domain}-{task}", **kwargs)
        self._env.reset()

    @property
    def physics(self):  # dm_control Physics, for scripted experts
        return self._env.physics

    @property
    def model(self) -> mujoco.MjModel:
        return self._env.physics.model.ptr

    @property
    def data(self) -> mujoco.MjData:
        return self._env.physics.data.ptr

    @property
    def control_dt(self) -> float:
        return float(self._env.control_timestep()) * self.action_repeat

    @property
    def simulator(self) -> str:
        return f"dm-control {version('dm-control')}, mujoco {mujoco.__version__}"

    def state_names(self) -> list[str]:
        """The suite's observation names, indexed where one holds several values."""
        obs = self._env.task.get_observation(self._env.physics)
        return [
            name if np.size(value) == 1 else f"{name}_{i}" for name, value in obs.items() for i in range(np.size(value))
        ]

    def _native_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        spec = self._env.action_spec()
        return np.broadcast_to(spec.minimum, spec.shape), np.broadcast_to(spec.maximum, spec.shape)

    def _episode_step_limit(self) -> int:
        return int(self._env._step_limit) // self.action_repeat if math.isfinite(self._env._step_limit) else 1000

    def _reset_physics(self, seed: int) -> None:
        self._env.task._random = np.random.RandomState(seed)
        self._env.reset()

    def _step_physics(self, native_action: np.ndarray) -> tuple[float, bool]:
        reward = float(self._env.step(native_action).reward or 0.0)
        return reward, reward >= self.success_reward

    def _state_obs(self) -> np.ndarray:
        obs = self._env.task.get_observation(self._env.physics)
        return np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in obs.values()])

    def _extra_state(self) -> np.ndarray:
        return np.array([self._env._step_count], dtype=np.float64)

    def _set_extra_state(self, extra: np.ndarray) -> None:
        self._env._step_count = int(extra[0])
        self._env._reset_next_step = False
