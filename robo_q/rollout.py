"""One episode loop for every consumer: demo collection, replay, evaluation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from robo_q.data.episode_builder import EpisodeBuilder
from sim.base import MujocoEnv, Obs

VIDEO_SIZE = 256


@dataclass
class RolloutResult:
    seed: int
    success: bool
    episode_return: float
    length: int
    final_obs: Obs
    frames: list[np.ndarray] = field(default_factory=list)


def rollout(
    env: MujocoEnv,
    act: Callable[[Obs], np.ndarray],
    *,
    seed: int,
    initial_state: np.ndarray | None = None,
    max_steps: int | None = None,
    recorder: EpisodeBuilder | None = None,
    video_camera: str | int | None = None,
    video: bool = False,
) -> RolloutResult:
    """Run ``act`` from ``env.reset(seed)`` (then ``initial_state`` if given) until the episode ends."""
    obs, _ = env.reset(seed)
    if initial_state is not None:
        obs = env.set_state(initial_state)
    if recorder is not None:
        recorder.start(obs, env.get_state())
    frames = [env.render(video_camera, VIDEO_SIZE, VIDEO_SIZE)] if video else []
    success, total, steps = False, 0.0, 0
    limit = env.max_episode_steps if max_steps is None else max_steps
    while steps < limit:
        action = np.asarray(act(obs), dtype=np.float32)  # what the store keeps is what ran
        obs, reward, terminated, truncated, info = env.step(action)
        steps += 1
        total += reward
        success = success or info["success"]
        if recorder is not None:
            recorder.record(action, reward, info["success"], terminated, obs, env.get_state())
        if video:
            frames.append(env.render(video_camera, VIDEO_SIZE, VIDEO_SIZE))
        if terminated or truncated:
            break
    return RolloutResult(seed, success, total, steps, obs, frames)
