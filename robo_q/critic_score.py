"""How a trained critic values logged episodes: ``roboq demos score`` ranks a store's episodes.

Each step's score is the critic's Q of the logged action sequence (the K actions from that step
on, the last one repeated past the episode's end, as the replay buffer samples them) given the
logged observation (frames stacked as in training); an episode's score is the mean over its steps.
Does the critic score failed episodes below successful ones? :func:`roc_auc` says, from 0.5
(no better than chance) to 1 (every success above every failure).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from policies.features import stack_frames
from robo_q.data import EpisodeStore, StoreError


def episode_inputs(
    store: EpisodeStore, index: int, agent: Any, frame_stack: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One episode's critic inputs: observations by key [T, ...] and action sequences [T, K, D]."""
    keys = agent.encoder.keys
    episode = store.episode(index, observation_keys=keys)
    length = len(episode)
    steps = np.arange(length)
    obs = {}
    for key in keys:
        values = episode.steps[f"observation.{key}"]
        if key in agent.encoder.image_keys:
            rows = np.maximum(steps[:, None] + np.arange(1 - frame_stack, 1), 0)
            obs[key] = stack_frames(values, rows)
        else:
            obs[key] = values.astype(np.float32)
    ahead = np.minimum(steps[:, None] + np.arange(agent.cfg.seq_len), length - 1)
    return obs, episode.steps["action"][ahead].astype(np.float32)


def score_episodes(agent: Any, store: EpisodeStore, frame_stack: int, batch: int = 512) -> list[dict[str, Any]]:
    """Per episode: index, seed, success, length and the critic's mean and first-step Q of its actions."""
    if not hasattr(agent, "q_of"):
        raise StoreError(f"a {type(agent).__name__} has no critic to score episodes with (use cqn or cqn_as)")
    missing = [k for k in agent.encoder.keys if k not in store.features.keys]
    if missing:
        raise StoreError(f"{store.path} does not fit the checkpoint: it lacks observations {missing}")
    if agent.action_dim != store.features.action.dim:
        raise StoreError(f"{store.path} has {store.features.action.dim}-D actions, the checkpoint {agent.action_dim}-D")
    meta = store.episode_meta()
    scores = []
    for index in range(store.num_episodes):
        obs, actions = episode_inputs(store, index, agent, frame_stack)
        q = _q(agent, obs, actions, batch)
        scores.append(
            {
                "episode": index,
                "seed": int(meta["seed"][index]),
                "success": bool(meta["success"][index]),
                "length": len(actions),
                "score": float(q.mean()),
                "first_step_q": float(q[0]),
            }
        )
    return scores


def _q(agent: Any, obs: dict[str, np.ndarray], actions: np.ndarray | None, batch: int) -> torch.Tensor:
    """The critic's Q [T] of ``actions`` [T, K, D] (None: of the greedy policy's own) in batches."""
    out = []
    for i in range(0, len(next(iter(obs.values()))), batch):
        o = {k: torch.as_tensor(v[i : i + batch], device=agent.device) for k, v in obs.items()}
        a = agent.policy(o)[0] if actions is None else torch.as_tensor(actions[i : i + batch], device=agent.device)
        out.append(agent.q_of(o, a))
    return torch.cat(out).cpu()


@torch.no_grad()
def logged_vs_policy_q(agent: Any, store: EpisodeStore, index: int, frame_stack: int, batch: int = 512) -> dict:
    """One episode's mean critic Q of the logged action sequences and of the policy's greedy ones."""
    obs, actions = episode_inputs(store, index, agent, frame_stack)
    logged, chosen = _q(agent, obs, actions, batch), _q(agent, obs, None, batch)
    return {"q_logged": float(logged.mean()), "q_policy": float(chosen.mean())}


def roc_auc(scores: list[float], positive: list[bool]) -> float | None:
    """Probability that a random positive scores above a random negative (ties count half); None
    without both classes."""
    s, y = np.asarray(scores, np.float64), np.asarray(positive, bool)
    pos, neg = s[y], s[~y]
    if not len(pos) or not len(neg):
        return None
    above = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(above / (len(pos) * len(neg)))


def roc_auc_interval(
    scores: list[float], positive: list[bool], resamples: int = 2000, seed: int = 0
) -> tuple[float, float] | None:
    """A 95% bootstrap interval of :func:`roc_auc`: episodes resampled within each class."""
    s, y = np.asarray(scores, np.float64), np.asarray(positive, bool)
    pos, neg = s[y], s[~y]
    if not len(pos) or not len(neg):
        return None
    rng = np.random.default_rng(seed)
    p = pos[rng.integers(0, len(pos), (resamples, len(pos)))]
    n = neg[rng.integers(0, len(neg), (resamples, len(neg)))]
    above = (p[:, :, None] > n[:, None, :]).mean(axis=(1, 2)) + 0.5 * (p[:, :, None] == n[:, None, :]).mean(axis=(1, 2))
    low, high = np.quantile(above, [0.025, 0.975])
    return float(low), float(high)
