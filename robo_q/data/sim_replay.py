"""Replay a stored episode in its simulator, for evaluation of data and simulator fidelity.

``actions``: open loop from the recorded initial state and the recorded actions.
``states``: reset the simulator to each recorded state, apply the recorded action, compare.
Both report, per episode, whether the recorded success is reproduced and how far the replayed
state observations drift from the recorded ones (max abs difference).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from robo_q.data import Episode, EpisodeStore
from robo_q.rollout import VIDEO_SIZE, rollout
from robo_q.video import write_mp4
from sim import MujocoEnv, make_env

MODES = ("actions", "states")


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")


def replay_actions(env: MujocoEnv, episode: Episode, video: bool = False) -> tuple[dict[str, Any], list[np.ndarray]]:
    actions = iter(episode.steps["action"])
    result = rollout(
        env,
        lambda _: next(actions),
        seed=episode.seed,
        initial_state=episode.initial_state,
        max_steps=len(episode),
        video=video,
    )
    divergence = float(np.abs(result.final_obs["state"] - episode.final_observation["state"]).max())
    return {
        "replayed_success": result.success,
        "replayed_steps": result.length,
        "final_divergence": divergence,
    }, result.frames


def replay_states(env: MujocoEnv, episode: Episode, video: bool = False) -> tuple[dict[str, Any], list[np.ndarray]]:
    env.reset(episode.seed)
    targets = episode.next_observation("state")
    success, divergences, frames = False, [], []
    for state, action, target in zip(episode.steps["sim_state"], episode.steps["action"], targets, strict=True):
        env.set_state(state)
        obs, _, _, _, info = env.step(action)
        success = success or info["success"]
        divergences.append(float(np.abs(obs["state"] - target).max()))
        if video:
            frames.append(env.render(None, VIDEO_SIZE, VIDEO_SIZE))
    return {
        "replayed_success": success,
        "replayed_steps": len(divergences),
        "final_divergence": divergences[-1],
        "max_step_divergence": max(divergences),
    }, frames


def replay_store(
    store: EpisodeStore,
    *,
    mode: str,
    out_dir: Path,
    video: bool = False,
    video_episodes: int = 3,
    episodes: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Replay (up to ``episodes``) episodes of ``store``; writes ``replay_info.json`` (and mp4s) to ``out_dir``."""
    check_mode(mode)
    replay_one = replay_actions if mode == "actions" else replay_states
    settings = {**store.attrs["env_config"], "cameras": []}  # replay compares states; no camera frames needed
    n = store.num_episodes if episodes is None else min(episodes, store.num_episodes)
    per_episode = []
    with make_env(store.task, **settings) as env:
        for i in tqdm(range(n), desc=f"replay {mode}", unit="ep", disable=not progress):
            episode = store.episode(i, observation_keys=["state"])
            with_video = video and i < video_episodes
            info, frames = replay_one(env, episode, with_video)
            info = {
                "episode": i,
                "seed": episode.seed,
                "recorded_steps": len(episode),
                "recorded_success": episode.success,
                **info,
            }
            info["success_reproduced"] = info["replayed_success"] == episode.success
            if with_video:
                info["video"] = str(
                    write_mp4(out_dir / "videos" / f"episode_{i:04d}.mp4", frames, 1.0 / env.control_dt)
                )
            per_episode.append(info)
    finals = [e["final_divergence"] for e in per_episode]
    report = {
        "store": str(store.path),
        "task": store.task,
        "mode": mode,
        "episodes": n,
        "recorded_success_rate": float(np.mean([e["recorded_success"] for e in per_episode])) if n else 0.0,
        "replayed_success_rate": float(np.mean([e["replayed_success"] for e in per_episode])) if n else 0.0,
        "success_reproduction_rate": float(np.mean([e["success_reproduced"] for e in per_episode])) if n else 0.0,
        "final_divergence_mean": float(np.mean(finals)) if n else 0.0,
        "final_divergence_max": float(np.max(finals)) if n else 0.0,
        "per_episode": per_episode,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "replay_info.json").write_text(json.dumps(report, indent=2))
    return report
