"""Meta-World v3 tasks (goal observable, randomised resets) behind the robo_q interface."""

from __future__ import annotations

from importlib.metadata import version

import metaworld
import mujoco
import numpy as np

from sim.base import MujocoEnv

_SUFFIX = "-v3-goal-observable"
TASKS: tuple[str, ...] = tuple(sorted(k.removesuffix(_SUFFIX) for k in metaworld.ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE))
_CURR_OBS = 18  # hand (3) + gripper (1) + two objects (7 each); the next 18 repeat the previous frame


class MetaWorldEnv(MujocoEnv):
    """``metaworld/<task>``: 39-D state, 4-D action (xyz delta + gripper), sparse reward by default."""

    family = "metaworld"
    default_reward = "sparse"
    default_action_repeat = 1  # Meta-World already applies frame_skip 5 (12.5 ms per action)
    default_camera = "corner2"
    action_units = "end-effector position delta (1.0 = 1 cm per step) and gripper effort"
    action_names = ["hand_dx", "hand_dy", "hand_dz", "gripper"]

    def __init__(self, name: str, **kwargs) -> None:
        self._env = metaworld.ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[name + _SUFFIX]()
        self._env._freeze_rand_vec = False  # new object/goal positions each reset ...
        self._env.seeded_rand_vec = True  # ... drawn from the env's seeded generator
        self._obs = np.zeros(0)
        super().__init__(f"metaworld/{name}", **kwargs)
        self._reset_physics(0)

    @property
    def model(self) -> mujoco.MjModel:
        return self._env.model

    @property
    def data(self) -> mujoco.MjData:
        return self._env.data

    @property
    def control_dt(self) -> float:
        return float(self._env.dt) * self.action_repeat

    @property
    def simulator(self) -> str:
        return f"metaworld {version('metaworld')}, mujoco {mujoco.__version__}"

    def _native_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self._env.action_space.low, self._env.action_space.high

    def _episode_step_limit(self) -> int:
        return self._env.max_path_length // self.action_repeat

    def _reset_physics(self, seed: int) -> None:
        self._env.seed(seed)
        self._obs, _ = self._env.reset()

    def _step_physics(self, native_action: np.ndarray) -> tuple[float, bool]:
        self._obs, reward, _, _, info = self._env.step(native_action)
        return float(reward), bool(info["success"])

    def _state_obs(self) -> np.ndarray:
        return np.asarray(self._obs, dtype=np.float64).copy()

    def _extra_state(self) -> np.ndarray:
        # The observation carries the previous frame, which MuJoCo's state does not.
        return np.concatenate([self._obs, [self._env.curr_path_length]])

    def _set_extra_state(self, extra: np.ndarray) -> None:
        self._obs = extra[:-1].copy()
        self._env._prev_obs = self._obs[:_CURR_OBS].copy()
        self._env.curr_path_length = int(extra[-1])
