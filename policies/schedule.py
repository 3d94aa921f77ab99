"""Action-sequence scheduling (numpy only): temporal ensembling or open-loop execution.

A sequence policy predicts K future actions per call. With ensembling (CQN-AS default) it is
called every step and the action for step t averages every stored prediction for t with weights
exp(-gain * i), i = 0 for the oldest; open loop runs each predicted sequence for K steps.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Sequence

import numpy as np

from policies.observation import FrameHistory


class ActionScheduler:
    def __init__(self, seq_len: int, mode: str = "ensemble", gain: float = 0.01) -> None:
        if mode not in ("ensemble", "open_loop"):
            raise ValueError(f"mode must be 'ensemble' or 'open_loop', got {mode!r}")
        self.seq_len, self.mode, self.gain = seq_len, mode, gain
        self._queue: deque[np.ndarray] = deque()
        weights = np.exp(-gain * np.arange(seq_len))
        self._weights = [weights[:n, None] / weights[:n].sum() for n in range(1, seq_len + 1)]
        self._ring: np.ndarray | None = None  # ensembling: see _new_ring
        self._writes: list[np.ndarray] = []
        self._reads: list[np.ndarray] = []
        self._steps = 0  # predictions since the reset

    def reset(self) -> None:
        self._steps = 0
        self._queue.clear()

    def needs_prediction(self) -> bool:
        return self.mode == "ensemble" or not self._queue

    def step(self, predict: Callable[[], np.ndarray]) -> np.ndarray:
        """The action for this step; calls ``predict() -> [K, D]`` only when a new sequence is needed."""
        if self.mode == "open_loop":
            if not self._queue:
                self._queue.extend(np.asarray(predict()))
            return self._queue.popleft()
        seq = predict()
        if type(seq) is not np.ndarray:
            seq = np.asarray(seq)
        ring, t, k = self._ring, self._steps, self.seq_len
        if ring is None or ring.shape[1:] != seq.shape or (ring.dtype != seq.dtype and not self._holds(seq.dtype)):
            self._new_ring(seq)
        self._writes[t % k][...] = seq
        self._steps = t + 1
        # prediction made i steps ago (i = n-1 .. 0, oldest first) contributes its step i
        candidates = self._reads[t] if t < k else self._reads[k + t % k]
        return (self._weights[len(candidates) - 1] * candidates).sum(0)

    def _holds(self, dtype: np.dtype) -> bool:
        return self._ring is not None and np.result_type(self._ring.dtype, dtype) == self._ring.dtype

    def _new_ring(self, seq: np.ndarray) -> None:
        """Storage for predictions like ``seq`` [K, D], keeping the episode's earlier ones (a new dtype promotes).

        The prediction made at step t goes to slots t % K and t % K + K of a ring [2K, K, D] (one
        write through a view of both). With the copy, the candidates for step t, step i of the
        prediction made i steps ago for i = n-1 .. 0, lie on one strided line of the ring: a view
        per phase, so the ensemble is one multiply and one sum, with no gathering.
        """
        k, old = self.seq_len, self._ring if self._steps else None
        if seq.ndim != 2 or seq.shape[0] < k:
            raise ValueError(f"predicted sequence of shape {seq.shape}: expected [{k}, action dim] (or more steps)")
        if old is not None and old.shape[1:] != seq.shape:
            raise ValueError(f"predicted sequence of shape {seq.shape} after ones of shape {old.shape[1:]}")
        ring = np.zeros((2 * k, *seq.shape), seq.dtype if old is None else np.result_type(old, seq))
        if old is not None:
            ring[:] = old
        slot, step, element = ring.strides
        as_strided = np.lib.stride_tricks.as_strided
        self._writes = [as_strided(ring[p:], (2, *seq.shape), (k * slot, step, element)) for p in range(k)]
        # candidates: step m of slot u, oldest (m = n-1) first, u = t % K + K - m: up one slot, down one step
        line = slot - step

        def candidates(first_slot: int, first_step: int, n: int) -> np.ndarray:
            return as_strided(ring[first_slot, first_step], (n, seq.shape[1]), (line, element))

        self._reads = [candidates(k, t, t + 1) for t in range(k)]  # t < K: predictions 0..t, in slots K..K+t
        self._reads += [candidates(p + 1, k - 1, k) for p in range(k)]  # t >= K, by t % K
        self._ring = ring


class SequencePolicy:
    """Turns ``predict(stacked_obs) -> [K, D]`` into a per-step policy: frame stacking, then
    sequence scheduling. Training evaluation and the deployed runtime both run through this."""

    def __init__(
        self,
        predict: Callable[[dict[str, np.ndarray]], np.ndarray],
        seq_len: int,
        execution: str = "ensemble",
        gain: float = 0.01,
        frame_stack: int = 1,
        image_keys: Collection[str] = (),
    ) -> None:
        self.predict = predict
        self.history = FrameHistory(frame_stack, image_keys)
        self.scheduler = ActionScheduler(seq_len, execution, gain)

    def reset(self) -> None:
        self.history.reset()
        self.scheduler.reset()

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        stacked = self.history(obs)
        return self.scheduler.step(lambda: self.predict(stacked))


class LockstepPolicies:
    """``n`` sequence policies stepped together (one per environment of a batched evaluation): each
    slot stacks its own frames and schedules its own sequences as :class:`SequencePolicy` does, and
    the predictions a step needs are made in one ``predict_batch(observations [N', ...]) -> [N', K, D]``
    call."""

    def __init__(
        self,
        predict_batch: Callable[[dict[str, np.ndarray]], np.ndarray],
        n: int,
        seq_len: int,
        execution: str = "ensemble",
        gain: float = 0.01,
        frame_stack: int = 1,
        image_keys: Collection[str] = (),
    ) -> None:
        self.predict_batch = predict_batch
        self.histories = [FrameHistory(frame_stack, image_keys) for _ in range(n)]
        self.schedulers = [ActionScheduler(seq_len, execution, gain) for _ in range(n)]

    def __len__(self) -> int:
        return len(self.schedulers)

    def reset(self, i: int) -> None:
        self.histories[i].reset()
        self.schedulers[i].reset()

    def act(self, observations: Sequence[dict[str, np.ndarray] | None]) -> list[np.ndarray | None]:
        """Every slot's action for its observation (None: the slot is idle this step)."""
        stacked = [None if obs is None else h(obs) for h, obs in zip(self.histories, observations, strict=True)]
        asking = [i for i, s in enumerate(stacked) if s is not None and self.schedulers[i].needs_prediction()]
        predicted: dict[int, np.ndarray] = {}
        if asking:
            rows = [row for i in asking if (row := stacked[i]) is not None]
            batch = {k: np.stack([row[k] for row in rows]) for k in rows[0]}
            predicted = dict(zip(asking, self.predict_batch(batch), strict=True))
        return [
            None if s is None else scheduler.step(lambda i=i: predicted[i])  # type: ignore[misc]
            for i, (scheduler, s) in enumerate(zip(self.schedulers, stacked, strict=True))
        ]
