"""Greedy evaluation of a sequence policy: on fixed seeds in the simulator (shared by training and
`roboq eval`), or on a store's logged observations against its logged actions (no simulator)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from policies.features import FeatureSchema
from policies.schedule import SequencePolicy
from robo_q.data import EpisodeStore, StoreError
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


AGREEMENT_TOLERANCE = 0.1  # normalised units (5% of an action's range): a step "agrees" within it


def evaluate_on_store(
    policy: SequencePolicy, features: FeatureSchema, store: EpisodeStore, episodes: list[int]
) -> dict[str, Any]:
    """Greedy actions on a store's logged observations, compared with the logged actions (no simulator).

    ``features``: what the policy reads and commands; the store must hold those observations and
    the same action. Per episode: mean absolute error (normalised units, and native units per action
    dimension) and the share of steps whose every dimension lies within ``AGREEMENT_TOLERANCE`` of
    the logged one.
    """
    missing = [k for k in features.keys if k not in store.features.keys]
    problems = [f"it lacks observations {missing}"] if missing else []
    if features.action != store.features.action:
        problems.append(f"its action {store.features.action} is not the policy's {features.action}")
    if problems:
        raise StoreError(f"{store.path} cannot evaluate this policy: {'; '.join(problems)}")
    if not episodes:
        raise StoreError(f"{store.path} holds no episodes to evaluate on")
    keys = features.keys
    half_range = (features.action.high_array - features.action.low_array) / 2
    per_episode: list[dict[str, Any]] = []
    for index in episodes:
        episode = store.episode(index, observation_keys=keys)
        policy.reset()
        actions = np.stack(
            [policy.act({k: episode.steps[f"observation.{k}"][t] for k in keys}) for t in range(len(episode))]
        )
        error = np.abs(actions - episode.steps["action"])
        per_episode.append(
            {
                "episode": index,
                "seed": episode.seed,
                "length": len(episode),
                "action_mae": float(error.mean()),
                "action_mae_native": (error.mean(axis=0) * half_range).tolist(),
                "agreement": float(np.mean(np.all(error <= AGREEMENT_TOLERANCE, axis=1))),
            }
        )
    return {
        "episodes": len(per_episode),
        "action_mae": float(np.mean([e["action_mae"] for e in per_episode])),
        "action_mae_native": np.mean([e["action_mae_native"] for e in per_episode], axis=0).tolist(),
        "agreement": float(np.mean([e["agreement"] for e in per_episode])),
        "action_names": list(features.action.names),
        "per_episode": per_episode,
    }


def plot_store_evaluation(result: dict[str, Any], path: Path) -> None:
    """Per episode: the share of agreeing steps, and the mean error per action dimension (native units)."""
    from matplotlib.figure import Figure

    episodes = [e["episode"] for e in result["per_episode"]]
    x = np.arange(len(episodes))
    fig = Figure(figsize=(max(6.0, 0.35 * len(episodes) + 3), 5.4), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.bar(x, [e["agreement"] for e in result["per_episode"]], color="C0")
    top.set_ylim(0, 1.02)
    top.set_ylabel(f"steps within {AGREEMENT_TOLERANCE}")
    errors = np.array([e["action_mae_native"] for e in result["per_episode"]])
    width = 0.8 / errors.shape[1]
    for d, name in enumerate(result["action_names"]):
        bottom.bar(x + (d - (errors.shape[1] - 1) / 2) * width, errors[:, d], width, label=name, color=f"C{d + 1}")
    bottom.set_ylabel("mean |error| (action units)")
    bottom.set_xlabel("episode")
    bottom.set_xticks(x, [str(e) for e in episodes])
    bottom.legend(fontsize="small", ncols=min(4, errors.shape[1]))
    for ax in (top, bottom):
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"policy vs logged actions: {result['agreement']:.0%} of steps agree")
    fig.savefig(path, dpi=110)
