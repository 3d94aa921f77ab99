"""Synthetic episodes for store tests; run as a script it appends episodes forever (to be killed)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from policies.features import ActionSpec, FeatureSchema, image_feature, state_feature
from robo_q.data import EpisodeStore

FEATURES = FeatureSchema(
    {"state": state_feature("state", ["t", "t_plus_i", "i"], "s"), "images.cam": image_feature("images.cam", 16, 16)},
    ActionSpec(("a0", "a1"), (-1.0, -1.0), (1.0, 1.0), "effort"),
    control_dt=0.05,
)
STATE_DIM = 4


def synthetic_episode(i: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Episode ``i``: deterministic content, length 40 + i."""
    n = 40 + i
    t = np.arange(n, dtype=np.float64)
    steps = {
        "observation.state": np.stack([t, t + i, np.full(n, i)], axis=1),
        "observation.images.cam": ((t[:, None, None, None] + i + np.zeros((n, 16, 16, 3))) % 251).astype(np.uint8),
        "action": np.stack([np.sin(t + i), np.cos(t + i)], axis=1) * 0.9,
        "reward": (t == n - 1).astype(np.float32),
        "success": t == n - 1,
        "terminated": t == n - 1,
        "sim_state": np.stack([np.full(n, i), t, t * 2, t * 3], axis=1),
    }
    final = {"state": np.array([n, n + i, i], np.float64), "images.cam": np.full((16, 16, 3), i % 251, np.uint8)}
    return steps, final


def create(path: Path) -> EpisodeStore:
    return EpisodeStore.create(
        path,
        task="test/synthetic",
        features=FEATURES,
        state_dim=STATE_DIM,
        env_config={},
        simulator="none",
        source="expert",
    )


if __name__ == "__main__":
    path = Path(sys.argv[1])
    store = EpisodeStore.open(path, "a") if path.exists() else create(path)
    i = store.num_episodes
    while True:
        steps, final = synthetic_episode(i)
        print(f"writing {i}", flush=True)
        store.append_episode(steps, final, seed=i)
        print(f"committed {i}", flush=True)
        i += 1
