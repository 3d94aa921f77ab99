"""Greedy evaluation of a sequence policy: on fixed seeds in the simulator (shared by training and
`roboq eval`), or on a store's logged observations against its logged actions (no simulator)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from policies.features import ActionSpec, FeatureSchema
from policies.schedule import LockstepPolicies, SequencePolicy
from robo_q.data import EpisodeStore, StoreError
from robo_q.rollout import VIDEO_SIZE, RolloutResult
from robo_q.video import write_mp4
from sim import MujocoEnv
from sim.base import Obs

EVAL_SEED_BASE = 1_000_000  # evaluation seeds never collide with demo or training seeds


class _Single:
    """One sequence policy (a bundle's, say) in the lockstep interface: one slot, no batching."""

    def __init__(self, policy: SequencePolicy) -> None:
        self.policy = policy

    def __len__(self) -> int:
        return 1

    def reset(self, i: int) -> None:
        self.policy.reset()

    def act(self, observations: Sequence[Obs | None]) -> list[np.ndarray | None]:
        return [None if obs is None else self.policy.act(obs) for obs in observations]


def evaluate(
    policy: SequencePolicy | LockstepPolicies,
    env: MujocoEnv | Sequence[MujocoEnv],
    episodes: int,
    *,
    seed: int = EVAL_SEED_BASE,
    video_dir: Path | None = None,
    video_episodes: int = 0,
) -> dict[str, Any]:
    """Run ``episodes`` greedy episodes on seeds ``seed, seed+1, ...``; per-episode and aggregate results.

    With several environments and :class:`~policies.schedule.LockstepPolicies` (one slot each),
    episodes run in waves of ``len(envs)`` in lockstep: one batched forward pass per step serves
    every environment still running. Each episode's seed, and so its result, is the same either way.
    """
    envs = [env] if isinstance(env, MujocoEnv) else list(env)
    slots = _Single(policy) if isinstance(policy, SequencePolicy) else policy
    width = min(len(envs), len(slots))
    per_episode: list[dict[str, Any]] = []
    for first in range(0, episodes, width):
        wave = list(range(first, min(first + width, episodes)))
        for slot in range(len(wave)):
            slots.reset(slot)
        results = _lockstep(
            slots,
            envs[: len(wave)],
            [seed + i for i in wave],
            [video_dir is not None and i < video_episodes for i in wave],
        )
        for i, result in zip(wave, results, strict=True):
            info: dict[str, Any] = {
                "seed": result.seed,
                "success": result.success,
                "return": result.episode_return,
                "length": result.length,
            }
            if result.frames and video_dir is not None:
                path = video_dir / f"eval_{i:03d}_seed{result.seed}.mp4"
                info["video"] = str(write_mp4(path, result.frames, 1.0 / envs[0].control_dt))
            per_episode.append(info)
    return {
        "episodes": episodes,
        "success_rate": float(np.mean([e["success"] for e in per_episode])),
        "mean_return": float(np.mean([e["return"] for e in per_episode])),
        "mean_length": float(np.mean([e["length"] for e in per_episode])),
        "seeds": [e["seed"] for e in per_episode],
        "per_episode": per_episode,
    }


def _lockstep(
    slots: LockstepPolicies | _Single, envs: list[MujocoEnv], seeds: list[int], video: list[bool]
) -> list[RolloutResult]:
    """One episode per environment, stepped together until each has ended."""
    first = [env.reset(s)[0] for env, s in zip(envs, seeds, strict=True)]
    results = [RolloutResult(s, False, 0.0, 0, obs) for s, obs in zip(seeds, first, strict=True)]
    observations: list[Obs | None] = list(first)
    for env, result, record in zip(envs, results, video, strict=True):
        if record:
            result.frames.append(env.render(None, VIDEO_SIZE, VIDEO_SIZE))
    while any(obs is not None for obs in observations):
        actions = slots.act(observations + [None] * (len(slots) - len(observations)))
        for i, (env, result) in enumerate(zip(envs, results, strict=True)):
            action = actions[i]
            if action is None:
                continue
            obs, reward, terminated, truncated, info = env.step(np.asarray(action, dtype=np.float32))
            result.length += 1
            result.episode_return += reward
            result.success = result.success or info["success"]
            result.final_obs = obs
            if video[i]:
                result.frames.append(env.render(None, VIDEO_SIZE, VIDEO_SIZE))
            done = terminated or truncated or result.length >= env.max_episode_steps
            observations[i] = None if done else obs
    return results


AGREEMENT_TOLERANCE = 0.1  # normalised units (5% of an action's range): a step "agrees" within it


def action_grid(agent_settings: Mapping[str, Any]) -> tuple[int, int] | None:
    """(levels, bins) of a coarse-to-fine critic's action discretisation (None: BC, no bins)."""
    if agent_settings.get("name") == "bc" or "levels" not in agent_settings:
        return None
    return int(agent_settings["levels"]), int(agent_settings["bins"])


def bins_matched(acted: np.ndarray, logged: np.ndarray, levels: int, bins: int) -> list[float]:
    """Per level, the share of (step, dimension) pairs whose action falls in the logged one's bin
    (level l: the ``bins**(l + 1)`` equal intervals of [-1, 1] that l + 1 coarse-to-fine levels make)."""
    n = bins**levels
    fine = [np.minimum(np.floor((np.clip(a, -1, 1) + 1) * n / 2), n - 1).astype(np.int64) for a in (acted, logged)]
    return [
        float(np.mean(fine[0] // bins ** (levels - 1 - lv) == fine[1] // bins ** (levels - 1 - lv)))
        for lv in range(levels)
    ]


def evaluate_on_store(
    policy: SequencePolicy,
    features: FeatureSchema,
    store: EpisodeStore,
    episodes: list[int],
    grid: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Greedy actions on a store's logged observations, compared with the logged actions (no simulator).

    ``features``: what the policy reads and commands; the store must hold those observations and
    the same action. Per episode: mean absolute error (normalised units, and native units per action
    dimension) and the share of steps whose every dimension lies within ``AGREEMENT_TOLERANCE`` of
    the logged one; with a critic's ``grid`` (levels, bins), the share of bins matched per level.
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
    per_episode: list[dict[str, Any]] = []
    for index in episodes:
        episode = store.episode(index, observation_keys=keys)
        observations = {k: episode.steps[f"observation.{k}"] for k in keys}
        per_episode.append(
            {
                "episode": index,
                "seed": episode.seed,
                **compare_actions(policy, features.action, observations, episode.steps["action"], grid),
            }
        )
    return summarize_comparison(per_episode, features)


def compare_actions(
    policy: SequencePolicy,
    action: ActionSpec,
    observations: dict[str, np.ndarray],
    logged: np.ndarray,
    grid: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """One episode's greedy actions (from a reset) against its logged normalised ones: length, mean
    absolute error (normalised, and per dimension in native units), the share of agreeing steps and,
    with a critic's ``grid``, of bins matched per level (:func:`bins_matched`)."""
    policy.reset()
    acted = np.stack([policy.act({k: v[t] for k, v in observations.items()}) for t in range(len(logged))])
    error = np.abs(acted - logged)
    out: dict[str, Any] = {
        "length": len(logged),
        "action_mae": float(error.mean()),
        "action_mae_native": (error.mean(axis=0) * (action.high_array - action.low_array) / 2).tolist(),
        "agreement": float(np.mean(np.all(error <= AGREEMENT_TOLERANCE, axis=1))),
    }
    if grid is not None:
        out["bins_matched"] = bins_matched(acted, logged, *grid)
    return out


def summarize_comparison(per_episode: list[dict[str, Any]], features: FeatureSchema) -> dict[str, Any]:
    """Means over the episodes of :func:`compare_actions`, with the episodes themselves."""
    matched = [e["bins_matched"] for e in per_episode if "bins_matched" in e]
    return {
        "episodes": len(per_episode),
        **({"bins_matched": np.mean(matched, axis=0).tolist()} if matched else {}),
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
    with_q = "q_logged" in result
    fig = Figure(figsize=(max(6.0, 0.35 * len(episodes) + 3), 7.6 if with_q else 5.4), layout="constrained")
    axes = fig.subplots(3 if with_q else 2, 1, sharex=True)
    top, bottom = axes[0], axes[-1]
    if with_q:
        for offset, key, label in ((-0.2, "q_logged", "logged actions"), (0.2, "q_policy", "policy's actions")):
            axes[1].bar(x + offset, [e[key] for e in result["per_episode"]], 0.4, label=label)
        axes[1].set_ylabel("critic Q (mean)")
        axes[1].legend(fontsize="small")
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
    for ax in axes:
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"policy vs logged actions: {result['agreement']:.0%} of steps agree")
    fig.savefig(path, dpi=110)
