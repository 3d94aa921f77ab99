"""In-memory episode replay for Q-learning: action sequences, n-step returns, frame stacking.

Storage: each array (``obs.<key>``, ``action``, ``reward``, ``terminated``) holds all episodes
concatenated along time, episode e at rows ``start[e] .. start[e] + T_e``; row ``start[e] + t``
holds o_t, a_t and the outcome of a_t, and the extra row ``start[e] + T_e`` holds the final
observation o_T (its action, reward and terminated are never read). Sampling is pure fancy indexing.
Past ``capacity`` transitions the oldest episodes are dropped; their rows are reclaimed when the
buffer next runs out of room (compacted in place, or copied into one twice the live size).
"""

from __future__ import annotations

import numpy as np

from policies.features import FeatureSchema, stack_frames
from robo_q.data import EpisodeStore

TRANSITION_ARRAYS = {"action": np.dtype(np.float32), "reward": np.dtype(np.float32), "terminated": np.dtype(np.bool_)}


class ReplayBuffer:
    """In-memory episode replay for Q-learning with action sequences, n-step returns and frame stacking.

    Holds the observations of ``features`` (image features frame-stacked, state features not) and
    its actions.
    """

    def __init__(
        self,
        features: FeatureSchema,
        seq_len: int = 1,
        nstep: int = 1,
        gamma: float = 0.99,
        frame_stack: int = 1,
        capacity: int = 1_000_000,
    ) -> None:
        action_dim = features.action.dim
        if min(action_dim, seq_len, nstep, frame_stack, capacity) < 1 or not 0.0 <= gamma <= 1.0:
            raise ValueError("action_dim, seq_len, nstep, frame_stack and capacity must be >= 1 and gamma in [0, 1]")
        self.obs_keys, self.action_dim, self.seq_len, self.nstep = features.keys, action_dim, seq_len, nstep
        self._image_keys = {f.key for f in features.of_kind("image")}
        self._dtypes = {f"obs.{k}": f.dtype for k, f in features.observation.items()} | TRANSITION_ARRAYS
        self.gamma, self.frame_stack, self.capacity = gamma, frame_stack, capacity
        self._keys = [f"obs.{k}" for k in self.obs_keys] + list(TRANSITION_ARRAYS)
        self._ahead = np.arange(max(seq_len, nstep))
        self._history = np.arange(1 - frame_stack, 1)
        self._gamma_pow = gamma ** np.arange(nstep + 1)
        self._clear()

    def _clear(self) -> None:
        self._buf: dict[str, np.ndarray] = {}
        self._starts = np.zeros(0, np.int64)
        self._lengths = np.zeros(0, np.int64)
        self._used = self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def num_episodes(self) -> int:
        return len(self._lengths)

    # -- adding -----------------------------------------------------------------------------------
    def add_episode(self, steps: dict[str, np.ndarray], final_observation: dict[str, np.ndarray]) -> None:
        """Add one episode given in store keys (``observation.<key>``, ``action``, ``reward``, ``terminated``)."""
        length = len(steps["action"])
        if not 1 <= length <= self.capacity:
            raise ValueError(f"episode length {length} must be in [1, capacity={self.capacity}]")
        rows = {
            f"obs.{k}": np.concatenate([steps[f"observation.{k}"], np.asarray(final_observation[k])[None]])
            for k in self.obs_keys
        }
        rows.update({k: steps[k] for k in TRANSITION_ARRAYS})
        rows = {k: np.asarray(v).astype(self._dtypes[k], copy=False) for k, v in rows.items()}
        if not self._buf:
            self._buf = {k: np.zeros((0, *v.shape[1:]), v.dtype) for k, v in rows.items()}
        for key, values in rows.items():
            expected = (length + key.startswith("obs."), *self._buf[key].shape[1:])
            if values.shape != expected or (key == "action" and values.shape[1:] != (self.action_dim,)):
                raise ValueError(f"episode key {key}: expected shape {expected}, got {values.shape}")
        excess = self._size + length - self.capacity
        if excess > 0:  # FIFO: drop the fewest oldest episodes that make room
            dropped = np.cumsum(self._lengths)
            drop = int(np.searchsorted(dropped, excess)) + 1
            self._size -= int(dropped[drop - 1])
            self._starts, self._lengths = self._starts[drop:], self._lengths[drop:]
        self._reserve(length + 1)
        at = self._used
        for key, values in rows.items():
            self._buf[key][at : at + len(values)] = values
        self._starts = np.append(self._starts, at)
        self._lengths = np.append(self._lengths, length)
        self._used += length + 1
        self._size += length

    def _reserve(self, rows: int) -> None:
        """Make room for ``rows`` more rows after the last episode."""
        total = len(self._buf["action"])
        if self._used + rows <= total:
            return
        head = int(self._starts[0]) if len(self._starts) else self._used
        live = self._used - head
        grown = max(total, 2 * (live + rows))  # keeps compaction cost amortised O(1) per row
        for key, buf in self._buf.items():
            if grown == total:
                buf[:live] = buf[head : self._used]
            else:
                self._buf[key] = np.zeros((grown, *buf.shape[1:]), buf.dtype)
                self._buf[key][:live] = buf[head : self._used]
        self._starts -= head
        self._used = live

    def add_store(self, store: EpisodeStore, limit: int | None = None) -> int:
        """Add the first ``limit`` (default all) episodes of ``store``; returns how many were added."""
        count = store.num_episodes if limit is None else min(limit, store.num_episodes)
        for i in range(count):
            episode = store.episode(i, observation_keys=self.obs_keys)
            self.add_episode(episode.steps, episode.final_observation)
        return count

    # -- sampling ---------------------------------------------------------------------------------
    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """A batch: ``obs.<key>``, ``next_obs.<key>``, ``action`` [B, K, A], ``reward`` and ``discount`` [B]."""
        if not self._size:
            raise ValueError("cannot sample from an empty replay")
        episode = rng.integers(len(self._lengths), size=batch_size)
        start, length = self._starts[episode, None], self._lengths[episode, None]
        t = rng.integers(0, length)
        ahead = t + self._ahead
        rows = start + np.minimum(ahead, length - 1)
        n = self.nstep
        valid = ahead[:, :n] < length
        terminal = self._buf["terminated"][rows[:, :n]] & valid
        counted = valid & (np.cumsum(terminal, axis=1) - terminal == 0)  # steps up to and including a terminal
        reward = np.where(counted, self._buf["reward"][rows[:, :n]], 0.0) @ self._gamma_pow[:n]
        n_valid = valid.sum(axis=1)
        discount = np.where(terminal.any(axis=1), 0.0, self._gamma_pow[n_valid])
        batch = {
            "action": self._buf["action"][rows[:, : self.seq_len]],
            "reward": reward.astype(np.float32),
            "discount": discount.astype(np.float32),
        }
        for prefix, step in (("obs", t), ("next_obs", t + n_valid[:, None])):
            for key in self.obs_keys:
                buf = self._buf[f"obs.{key}"]
                if key in self._image_keys:  # frames t-F+1..t, clamped at the episode start
                    batch[f"{prefix}.{key}"] = stack_frames(buf, start + np.maximum(step + self._history, 0))
                else:
                    batch[f"{prefix}.{key}"] = buf[(start + step)[:, 0]]
        return batch

    # -- persistence ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Live rows of every array plus ``episode_lengths``; views into the buffer, so save before adding more."""
        head = int(self._starts[0]) if len(self._starts) else self._used
        state = {key: buf[head : self._used] for key, buf in self._buf.items()}
        state["episode_lengths"] = self._lengths.copy()
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Replace the contents with those of :meth:`state_dict` (copied)."""
        lengths = np.asarray(state["episode_lengths"], np.int64)
        keys = self._keys if len(lengths) else []
        if set(state) != {*keys, "episode_lengths"}:
            raise ValueError(f"state keys {sorted(state)} do not match this replay's {sorted(keys)} + episode_lengths")
        rows = int((lengths + 1).sum())
        if any(len(state[k]) != rows for k in keys) or (
            len(lengths) and state["action"].shape[1:] != (self.action_dim,)
        ):
            raise ValueError(f"state arrays must have {rows} rows and actions of size {self.action_dim}")
        self._clear()
        self._buf = {k: np.array(state[k], self._dtypes[k]) for k in keys}
        self._lengths = lengths.copy()
        self._starts = np.cumsum(lengths + 1) - (lengths + 1)
        self._used, self._size = rows, int(lengths.sum())
