"""Observation history (numpy only): the last F frames of each camera, stacked on the channel axis."""

from __future__ import annotations

from collections import deque
from collections.abc import Collection

import numpy as np

from policies.features import stack_frames


class FrameHistory:
    """Keeps the last ``frames`` images of each of ``image_keys`` (oldest first, the first frame
    repeated at episode start) and stacks them with :func:`policies.features.stack_frames`, as the
    replay buffer does; other keys pass through."""

    def __init__(self, frames: int, image_keys: Collection[str] = ()) -> None:
        self.frames = frames
        self.image_keys = frozenset(image_keys)
        self._buffers: dict[str, deque[np.ndarray]] = {}
        self._rows = np.arange(frames)[None]

    def reset(self) -> None:
        self._buffers.clear()

    def __call__(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.frames == 1 or not self.image_keys:
            return obs
        out = dict(obs)
        for key in self.image_keys & obs.keys():
            buffer = self._buffers.get(key)
            if buffer is None:
                buffer = self._buffers[key] = deque([obs[key]] * self.frames, maxlen=self.frames)
            else:
                buffer.append(obs[key])
            out[key] = stack_frames(np.stack(buffer), self._rows)[0]
        return out
