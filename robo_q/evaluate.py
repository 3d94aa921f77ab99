"""Greedy evaluation of a sequence policy on fixed seeds, shared by training and `roboq eval`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from policies.schedule import SequencePolicy
from robo_q.rollout import rollout
from robo_q.video import write_mp4
from sim import MujocoEnv

EVAL_SEED_BASE = 1_000_000  # evaluation seeds never collide with demo or training seeds


def evaluate(
    policy: SequencePolicy,
    env: MujocoEnv,
    episodes: int,
    *,
    seed: int = EVAL_SEED_BASE,
    video_dir: Path | None = None,
    video_episodes: int = 0,
) -> dict[str, Any]:
    """Run ``episodes`` greedy episodes on seeds ``seed, seed+1, ...``; per-episode and aggregate results."""
    per_episode: list[dict[str, Any]] = []
    for i in range(episodes):
        policy.reset()
        record = video_dir is not None and i < video_episodes
        result = rollout(env, policy.act, seed=seed + i, video=record)
        info: dict[str, Any] = {
            "seed": result.seed,
            "success": result.success,
            "return": result.episode_return,
            "length": result.length,
        }
        if record and video_dir is not None:
            info["video"] = str(
                write_mp4(video_dir / f"eval_{i:03d}_seed{result.seed}.mp4", result.frames, 1.0 / env.control_dt)
            )
        per_episode.append(info)
    return {
        "episodes": episodes,
        "success_rate": float(np.mean([e["success"] for e in per_episode])),
        "mean_return": float(np.mean([e["return"] for e in per_episode])),
        "mean_length": float(np.mean([e["length"] for e in per_episode])),
        "seeds": [e["seed"] for e in per_episode],
        "per_episode": per_episode,
    }
