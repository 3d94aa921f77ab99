"""Simulator adapters (MuJoCo: Meta-World, dm_control, any MJCF model) and expert demo sources."""

from sim.base import MujocoEnv, TaskError
from sim.registry import list_tasks, make_env

__all__ = ["MujocoEnv", "TaskError", "list_tasks", "make_env"]
