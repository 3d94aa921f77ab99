"""Any MuJoCo MJCF model behind the robo_q interface."""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np

from sim.base import MujocoEnv, TaskError


class MJCFEnv(MujocoEnv):
    """``mjcf/<path-to-xml>``: observation = joint positions and velocities (+ sensors if asked),
    action = the model's actuators scaled from their ctrlrange (unlimited actuators: [-1, 1]).

    A bare model defines no task: reward is 0 and success never happens. Resets start from
    keyframe 0 (or the model's default pose) with uniform noise of ``reset_noise`` on qpos/qvel.
    """

    family = "mjcf"
    default_reward = "dense"
    default_action_repeat = 1
    default_camera = -1

    def __init__(self, path: str, *, sensors: bool = False, reset_noise: float = 0.01, **kwargs) -> None:
        xml = Path(path).expanduser()
        if not xml.is_file():
            raise TaskError(f"mjcf/{path}: no such MJCF file")
        try:
            self._model = mujoco.MjModel.from_xml_path(str(xml))
        except ValueError as err:
            raise TaskError(f"mjcf/{path}: MuJoCo cannot load the model: {err}") from err
        if self._model.nu == 0:
            raise TaskError(f"mjcf/{path}: the model has no actuators to control")
        self._data = mujoco.MjData(self._model)
        self.sensors = bool(sensors)
        self.reset_noise = float(reset_noise)
        super().__init__(f"mjcf/{path}", **kwargs)
        mujoco.mj_forward(self._model, self._data)

    @property
    def model(self) -> mujoco.MjModel:
        return self._model

    @property
    def data(self) -> mujoco.MjData:
        return self._data

    @property
    def control_dt(self) -> float:
        return float(self._model.opt.timestep) * self.action_repeat

    def _native_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        limited = self._model.actuator_ctrllimited.astype(bool)
        ranges = np.where(limited[:, None], self._model.actuator_ctrlrange, [-1.0, 1.0])
        return ranges[:, 0], ranges[:, 1]

    def _episode_step_limit(self) -> int:
        return 1000

    def _reset_physics(self, seed: int) -> None:
        m, d = self._model, self._data
        if m.nkey > 0:
            mujoco.mj_resetDataKeyframe(m, d, 0)
        else:
            mujoco.mj_resetData(m, d)
        rng = np.random.default_rng(seed)
        d.qpos[:] += rng.uniform(-self.reset_noise, self.reset_noise, m.nq)
        d.qvel[:] += rng.uniform(-self.reset_noise, self.reset_noise, m.nv)
        mujoco.mj_normalizeQuat(m, d.qpos)
        mujoco.mj_forward(m, d)

    def _step_physics(self, native_action: np.ndarray) -> tuple[float, bool]:
        self._data.ctrl[:] = native_action
        mujoco.mj_step(self._model, self._data)
        return 0.0, False

    def _state_obs(self) -> np.ndarray:
        parts = [self._data.qpos, self._data.qvel] + ([self._data.sensordata] if self.sensors else [])
        return np.concatenate(parts).astype(np.float64)
