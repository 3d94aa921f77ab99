"""Simulator adapters (MuJoCo: Meta-World, dm_control, any MJCF model) and expert demo sources."""

from sim.base import MujocoEnv, TaskError
from sim.registry import default_camera, is_task, list_tasks, make_env

__all__ = ["MujocoEnv", "TaskError", "default_camera", "is_task", "list_tasks", "make_env"]
