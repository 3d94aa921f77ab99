"""Meta-World v3 tasks (goal observable, randomised resets) behind the robo_q interface."""

from __future__ import annotations

from importlib.metadata import version
from typing import ClassVar

import metaworld
import mujoco
import numpy as np

from sim.base import MujocoEnv

_SUFFIX = "-v3-goal-observable"
TASKS: tuple[str, ...] = tuple(sorted(k.removesuffix(_SUFFIX) for k in metaworld.ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE))
_CURR_OBS = 18  # hand (3) + gripper (1) + two objects (7 each); the next 18 repeat the previous frame
_FRAME_NAMES = ["hand_x", "hand_y", "hand_z", "gripper_distance"] + [
    f"{obj}_{axis}" for obj in ("obj1", "obj2") for axis in ("x", "y", "z", "qw", "qx", "qy", "qz")
]
_FRAME_UNITS = ["m", "m", "m", ""] + ["m", "m", "m", "", "", "", ""] * 2
# Meta-World's fixed "corner" cameras (assets/objects/assets/xyz_base.xml) were authored for
# mujoco-py, whose offscreen render returned OpenGL's bottom-up rows unflipped: their camera y axis
# (image up) points at the floor (corner: xyaxes "... -0.2 -0.2 -1"; corner2-4: euler giving a
# ~180 deg roll), so the buffer read bottom-up looked right. mujoco.Renderer (like gymnasium's)
# returns top-down rows, so these cameras render upside down. topview, behindGripper and
# gripperPOV are upright already.
UPSIDE_DOWN_CAMERAS: tuple[str, ...] = ("corner", "corner2", "corner3", "corner4")
_ROLL_180 = np.array([0.0, 0.0, 0.0, 1.0])  # half turn about the camera's optical (local z) axis


def _roll_upside_down_cameras(model: mujoco.MjModel) -> None:
    """Roll each upside-down camera half a turn about its optical axis, in place.

    The same position, view direction and field of view, so the frame is the old one rotated by
    180 degrees (not mirrored) and the camera pose in ``model``/``data`` matches the pixels. Done
    once on the model, it costs the render path nothing.
    """
    for name in UPSIDE_DOWN_CAMERAS:
        cam_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name)
        if cam_id >= 0:
            rolled = np.empty(4)
            mujoco.mju_mulQuat(rolled, model.cam_quat[cam_id], _ROLL_180)
            model.cam_quat[cam_id] = rolled


class MetaWorldEnv(MujocoEnv):
    """``metaworld/<task>``: 39-D state, 4-D action (xyz delta + gripper), sparse reward by default."""

    family = "metaworld"
    default_reward = "sparse"
    default_action_repeat = 1  # Meta-World already applies frame_skip 5 (12.5 ms per action)
    default_camera = "corner2"
    control_mode = "delta"  # end-effector position deltas (1.0 = 1 cm per step) plus gripper effort
    action_names: ClassVar[list[str]] = ["hand_dx", "hand_dy", "hand_dz", "gripper"]
    action_unit_names: ClassVar[list[str]] = ["cm", "cm", "cm", "effort"]

    def __init__(self, name: str, **kwargs) -> None:
        self._env = metaworld.ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[name + _SUFFIX]()
        self._env._freeze_rand_vec = False  # new object/goal positions each reset ...
        self._env.seeded_rand_vec = True  # ... drawn from the env's seeded generator
        _roll_upside_down_cameras(self._env.model)  # before any reset's mj_forward sets cam_xmat
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

    def state_names(self) -> list[str]:
        """This frame, the previous frame (``prev_*``), then the goal position."""
        return _FRAME_NAMES + [f"prev_{n}" for n in _FRAME_NAMES] + ["goal_x", "goal_y", "goal_z"]

    def state_units(self) -> list[str]:
        return _FRAME_UNITS * 2 + ["m"] * 3

    def _native_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        space = self._env.action_space  # a gymnasium Box
        return space.low, space.high  # type: ignore[attr-defined]

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
