"""The one interface every simulator family implements.

Gymnasium-style ``reset(seed)`` / ``step(action)`` with actions normalised to [-1, 1], dict
observations (a flat ``state`` vector plus optional ``images.<camera>`` uint8 HWC frames),
``success`` in ``info``, the control period ``control_dt``, a full simulator-state vector for
replay, and offscreen rendering (``MUJOCO_GL=egl`` on headless machines).
"""

from __future__ import annotations

import abc
import os
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco
import numpy as np

from policies.features import ActionSpec, Feature, FeatureSchema, image_feature, state_feature

Obs = dict[str, np.ndarray]

REWARD_MODES = ("sparse", "dense")
# INTEGRATION = time, qpos, qvel, act, ctrl, applied forces, mocap, warm start: bit-exact replay.
_PHYSICS_STATE = mujoco.mjtState.mjSTATE_INTEGRATION
# Leading entries of every state vector: the reset seed that built the episode, the step count.
_STATE_HEADER = 2


class TaskError(ValueError):
    """An unknown task, a task without an expert, or a model that cannot be loaded."""


class MujocoEnv(abc.ABC):
    """Base adapter: subclasses expose ``model``/``data`` and implement the physics hooks."""

    family: str
    default_reward: str
    default_action_repeat: int
    default_camera: str | int
    control_mode = "effort"  # what the actuators take: position | velocity | effort | delta (policies.features)

    def __init__(
        self,
        task: str,
        *,
        reward: str = "auto",
        cameras: tuple[str, ...] | list[str] = (),
        image_size: int = 84,
        action_repeat: int | None = None,
        max_episode_steps: int | None = None,
    ) -> None:
        self.task = task
        self.reward_mode = self.default_reward if reward == "auto" else reward
        if self.reward_mode not in REWARD_MODES:
            raise ValueError(f"reward must be one of auto, {', '.join(REWARD_MODES)}; got {reward!r}")
        self.action_repeat = int(action_repeat or self.default_action_repeat)
        if self.action_repeat < 1:
            raise ValueError(f"action_repeat must be >= 1, got {self.action_repeat}")
        limit = self._episode_step_limit()
        self.max_episode_steps = int(min(max_episode_steps or limit, limit))
        self.cameras = tuple(cameras)
        self.image_size = int(image_size)
        for cam in self.cameras:
            self._camera_id(cam)
        self.action_low, self.action_high = (np.asarray(b, np.float64) for b in self._native_bounds())
        self.action_spec = ActionSpec(
            tuple(self.action_names),
            tuple(self.action_low),
            tuple(self.action_high),
            self.control_mode,
            tuple(self.action_unit_names),
        )
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self._seed_rng = np.random.default_rng()
        self._seed = -1
        self._t = 0

    # -- physics hooks ------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def model(self) -> mujoco.MjModel: ...

    @property
    @abc.abstractmethod
    def data(self) -> mujoco.MjData: ...

    @property
    @abc.abstractmethod
    def control_dt(self) -> float:
        """Seconds between two agent actions (action repeat included)."""

    @abc.abstractmethod
    def _native_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Actuator bounds in the simulator's own units."""

    @abc.abstractmethod
    def _episode_step_limit(self) -> int:
        """Largest episode length (agent steps) the simulator supports."""

    @abc.abstractmethod
    def _reset_physics(self, seed: int) -> None:
        """Start a new episode deterministically from ``seed``."""

    @abc.abstractmethod
    def _step_physics(self, native_action: np.ndarray) -> tuple[float, bool]:
        """Advance one simulator control step; return (dense reward, success)."""

    @abc.abstractmethod
    def _state_obs(self) -> np.ndarray:
        """The flat state observation (float64) of the current simulator state."""

    def _extra_state(self) -> np.ndarray:
        """Adapter bookkeeping that the MuJoCo state does not hold (restored by set_state)."""
        return np.zeros(0)

    def _set_extra_state(self, extra: np.ndarray) -> None:
        del extra

    @property
    def simulator(self) -> str:
        return f"mujoco {mujoco.__version__}"

    @property
    def action_names(self) -> list[str]:
        """One name per action dimension (the actuators unless the family says otherwise)."""
        return [self.model.actuator(i).name or f"actuator_{i}" for i in range(self.model.nu)]

    @property
    def action_unit_names(self) -> list[str]:
        """One unit per action dimension."""
        return ["ctrl"] * len(self.action_names)

    def state_names(self) -> list[str]:
        """One name per dimension of the ``state`` observation (generic unless the family says more)."""
        return [f"state_{i}" for i in range(self._state_obs().shape[0])]

    def state_units(self) -> list[str]:
        """One unit per dimension of the ``state`` observation."""
        return [""] * self._state_obs().shape[0]

    # -- public API ---------------------------------------------------------------------------
    @property
    def action_dim(self) -> int:
        return int(self.action_low.shape[0])

    @property
    def features(self) -> FeatureSchema:
        """What this env's observations and action are (the schema every later stage reads)."""
        observation: dict[str, Feature] = {"state": state_feature("state", self.state_names(), self.state_units())}
        for cam in self.cameras:
            observation[f"images.{cam}"] = image_feature(f"images.{cam}", self.image_size, self.image_size)
        return FeatureSchema(observation, self.action_spec, self.control_dt)

    @property
    def observation_spec(self) -> dict[str, dict[str, Any]]:
        """Shape and dtype of every observation key."""
        spec = {"state": {"shape": [int(self._state_obs().shape[0])], "dtype": "float64"}}
        for cam in self.cameras:
            spec[f"images.{cam}"] = {"shape": [self.image_size, self.image_size, 3], "dtype": "uint8"}
        return spec

    @property
    def config(self) -> dict[str, Any]:
        """The settings that rebuild an identical environment with ``make_env(task, **config)``."""
        return {
            "reward": self.reward_mode,
            "cameras": list(self.cameras),
            "image_size": self.image_size,
            "action_repeat": self.action_repeat,
            "max_episode_steps": self.max_episode_steps,
        }

    @property
    def episode_seed(self) -> int:
        """The seed the current episode was reset with (-1 before the first reset)."""
        return self._seed

    @property
    def elapsed_steps(self) -> int:
        return self._t

    def reset(self, seed: int | None = None) -> tuple[Obs, dict[str, Any]]:
        """Start an episode; the same seed gives the same initial state."""
        if seed is None:
            seed = int(self._seed_rng.integers(2**31 - 1))
        self._seed, self._t = int(seed), 0
        self._reset_physics(self._seed)
        return self.observation(), {"seed": self._seed, "success": False}

    def step(self, action: np.ndarray) -> tuple[Obs, float, bool, bool, dict[str, Any]]:
        """Apply a normalised action; returns (obs, reward, terminated, truncated, info)."""
        if self._seed < 0:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (self.action_dim,):
            raise ValueError(f"{self.task}: action must have shape ({self.action_dim},), got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{self.task}: action contains NaN or inf: {a}")
        native = self.action_spec.to_native(a)
        dense, success = 0.0, False
        for _ in range(self.action_repeat):
            r, s = self._step_physics(native)
            dense += r
            success = success or s
        self._t += 1
        sparse = self.reward_mode == "sparse"
        terminated = sparse and success
        truncated = not terminated and self._t >= self.max_episode_steps
        reward = float(success) if sparse else dense
        return self.observation(), reward, terminated, truncated, {"success": success, "dense_reward": dense}

    def observation(self) -> Obs:
        obs = {"state": self._state_obs()}
        for cam in self.cameras:
            obs[f"images.{cam}"] = self.render(cam, self.image_size, self.image_size)
        return obs

    def get_state(self) -> np.ndarray:
        """Full simulator state: [reset seed, step, MuJoCo integration state, adapter extras]."""
        physics = np.empty(mujoco.mj_stateSize(self.model, _PHYSICS_STATE))
        mujoco.mj_getState(self.model, self.data, physics, _PHYSICS_STATE)
        return np.concatenate([[self._seed, self._t], physics, self._extra_state()])

    def set_state(self, state: np.ndarray) -> Obs:
        """Restore a state from ``get_state`` (re-running the episode's reset if needed)."""
        state = np.asarray(state, dtype=np.float64)
        n_physics = mujoco.mj_stateSize(self.model, _PHYSICS_STATE)
        expected = _STATE_HEADER + n_physics + self._extra_state().shape[0]
        if state.shape != (expected,):
            raise ValueError(f"{self.task}: state must have shape ({expected},), got {state.shape}")
        if not np.all(np.isfinite(state)):
            raise ValueError(f"{self.task}: state contains NaN or inf")
        seed = int(state[0])
        if seed != self._seed:  # the reset rebuilds per-episode model parameters (goal, targets)
            self.reset(seed)
        self._t = int(state[1])
        physics = state[_STATE_HEADER : _STATE_HEADER + n_physics]
        mujoco.mj_setState(self.model, self.data, physics, _PHYSICS_STATE)
        mujoco.mj_forward(self.model, self.data)
        # mj_forward re-solves and overwrites the solver warm start; restore it for bit-exact steps.
        mujoco.mj_setState(self.model, self.data, physics, _PHYSICS_STATE)
        self._set_extra_state(state[_STATE_HEADER + n_physics :])
        return self.observation()

    def render(self, camera: str | int | None = None, height: int = 256, width: int = 256) -> np.ndarray:
        """Offscreen RGB frame (uint8 HWC) from a named or numbered camera (-1: free camera)."""
        cam = self.default_camera if camera is None else camera
        cam_id = self._camera_id(cam)
        renderer = self._renderers.get((height, width))
        if renderer is None:
            vis = self.model.vis.global_
            vis.offwidth, vis.offheight = max(vis.offwidth, width), max(vis.offheight, height)
            renderer = mujoco.Renderer(self.model, height, width)
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
            self._renderers[(height, width)] = renderer
        renderer.update_scene(self.data, camera=cam_id)
        return renderer.render()

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()

    def __enter__(self) -> MujocoEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _camera_id(self, camera: str | int) -> int:
        if isinstance(camera, int) or str(camera).lstrip("-").isdigit():
            cam_id = int(camera)
            if -1 <= cam_id < self.model.ncam:
                return cam_id
        else:
            cam_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, str(camera))
            if cam_id >= 0:
                return cam_id
        names = [self.model.camera(i).name or str(i) for i in range(self.model.ncam)]
        raise ValueError(f"{self.task}: unknown camera {camera!r}; cameras: {names} (or -1 for the free camera)")
