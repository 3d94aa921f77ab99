"""Observation history (numpy only): stacks the last F camera frames on the channel axis."""

from __future__ import annotations

from collections import deque

import numpy as np


class FrameHistory:
    """Keeps the last ``frames`` images per ``images.*`` key (oldest first, the first frame repeated
    at episode start); other keys pass through. Matches the replay buffer's frame stacking."""

    def __init__(self, frames: int) -> None:
        self.frames = frames
        self._buffers: dict[str, deque[np.ndarray]] = {}

    def reset(self) -> None:
        self._buffers.clear()

    def __call__(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.frames == 1:
            return obs
        out = dict(obs)
        for key, value in obs.items():
            if key.startswith("images.") and self.frames > 1:
                buffer = self._buffers.get(key)
                if buffer is None:
                    buffer = self._buffers[key] = deque([value] * self.frames, maxlen=self.frames)
                else:
                    buffer.append(value)
                out[key] = np.concatenate(buffer, axis=-1)
        return out
