"""Collects one episode's steps in memory, in store keys, while an env or a robot runs."""

from __future__ import annotations

import numpy as np

from robo_q.data.store import EpisodeStore

Obs = dict[str, np.ndarray]


class EpisodeBuilder:
    """Row t holds observation o_t and sim state s_t, then the action a_t and its outcome."""

    def __init__(self) -> None:
        self._rows: dict[str, list[np.ndarray]] = {}
        self._obs: Obs | None = None
        self._state: np.ndarray | None = None

    def start(self, obs: Obs, sim_state: np.ndarray) -> None:
        self._rows = {}
        self._obs, self._state = obs, sim_state

    def record(
        self,
        action: np.ndarray,
        reward: float,
        success: bool,
        terminated: bool,
        next_obs: Obs,
        next_sim_state: np.ndarray,
    ) -> None:
        if self._obs is None:
            raise RuntimeError("call start() before record()")
        row: dict[str, object] = {f"observation.{k}": v for k, v in self._obs.items()}
        row.update(action=action, reward=reward, success=success, terminated=terminated, sim_state=self._state)
        for key, value in row.items():
            self._rows.setdefault(key, []).append(np.asarray(value))
        self._obs, self._state = next_obs, next_sim_state

    def __len__(self) -> int:
        return len(self._rows.get("action", ()))

    @property
    def success(self) -> bool:
        return bool(np.any(self._rows.get("success", False)))

    def episode(self) -> tuple[dict[str, np.ndarray], Obs]:
        """(per-step arrays by store key, final observation) of the recorded episode."""
        return {key: np.stack(values) for key, values in self._rows.items()}, self._obs or {}

    def save(self, store: EpisodeStore, *, seed: int, source: str | None = None) -> int:
        """Append the recorded episode to ``store``; returns its index."""
        steps, final = self.episode()
        return store.append_episode(steps, final, seed=seed, source=source)
