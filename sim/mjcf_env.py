"""Any MuJoCo MJCF model behind the robo_q interface."""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np

from sim.base import MujocoEnv, TaskError

_JOINT = mujoco.mjtJoint
# Per joint type: (qpos axis, unit) and (qvel axis, unit); "" for a one-dimensional joint.
_QPOS = {
    _JOINT.mjJNT_FREE: [("x", "m"), ("y", "m"), ("z", "m"), ("qw", ""), ("qx", ""), ("qy", ""), ("qz", "")],
    _JOINT.mjJNT_BALL: [("qw", ""), ("qx", ""), ("qy", ""), ("qz", "")],
    _JOINT.mjJNT_SLIDE: [("", "m")],
    _JOINT.mjJNT_HINGE: [("", "rad")],
}
_QVEL = {
    _JOINT.mjJNT_FREE: [("vx", "m/s"), ("vy", "m/s"), ("vz", "m/s"), ("wx", "rad/s"), ("wy", "rad/s"), ("wz", "rad/s")],
    _JOINT.mjJNT_BALL: [("wx", "rad/s"), ("wy", "rad/s"), ("wz", "rad/s")],
    _JOINT.mjJNT_SLIDE: [("", "m/s")],
    _JOINT.mjJNT_HINGE: [("", "rad/s")],
}


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

    def _state_axes(self) -> list[tuple[str, str]]:
        """(name, unit) of each state dimension: joint positions, joint velocities, sensors."""
        m = self._model
        joints = [(m.joint(j).name or f"joint_{j}", _JOINT(m.jnt_type[j])) for j in range(m.njnt)]
        axes = [(f"{name}_pos{'_' + a if a else ''}", u) for name, kind in joints for a, u in _QPOS[kind]]
        axes += [(f"{name}_vel{'_' + a if a else ''}", u) for name, kind in joints for a, u in _QVEL[kind]]
        if self.sensors:
            sensors = [(m.sensor(s).name or f"sensor_{s}", int(m.sensor_dim[s])) for s in range(m.nsensor)]
            axes += [(name if dim == 1 else f"{name}_{i}", "") for name, dim in sensors for i in range(dim)]
        return axes

    def state_names(self) -> list[str]:
        return [name for name, _ in self._state_axes()]

    def state_units(self) -> list[str]:
        return [unit for _, unit in self._state_axes()]

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
