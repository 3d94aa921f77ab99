"""The last line before an actuator: clip, rate-limit, and hold the last safe action on bad output."""

from __future__ import annotations

import numpy as np


class SafetyFilter:
    """Clips to [low, high], limits the change per step to ``max_delta`` (if set), and replaces
    a non-finite or wrong-sized action by the last safe one (``hold``, zeros before any)."""

    def __init__(self, low: np.ndarray, high: np.ndarray, max_delta: float | np.ndarray | None = None) -> None:
        self.low, self.high = np.asarray(low, np.float64), np.asarray(high, np.float64)
        self.max_delta = None if max_delta is None else np.asarray(max_delta, np.float64)
        self.last: np.ndarray | None = None
        self.rejected = 0  # actions replaced by a hold

    def reset(self, last: np.ndarray | None = None) -> None:
        """Start over; ``last`` (the action the robot holds now) rate-limits the first action after it."""
        self.last = None if last is None else np.clip(np.asarray(last, np.float64), self.low, self.high)

    @property
    def hold(self) -> np.ndarray:
        return np.clip(np.zeros_like(self.low), self.low, self.high) if self.last is None else self.last.copy()

    def __call__(self, action: np.ndarray) -> np.ndarray:
        action = np.asarray(action, np.float64)
        if action.shape != self.low.shape or not np.isfinite(action).all():
            self.rejected += 1
            return self.hold
        # np.clip's arithmetic (it is documented as minimum(maximum(a, low), high)) without its wrapper's cost
        safe = np.minimum(np.maximum(action, self.low), self.high)
        if self.max_delta is not None and self.last is not None:
            safe = np.minimum(np.maximum(safe, self.last - self.max_delta), self.last + self.max_delta)
        self.last = safe
        return safe.copy()
