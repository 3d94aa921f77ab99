"""Success rates with 95% Wilson score intervals."""

from __future__ import annotations

import math

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion: ``successes`` out of ``trials``.

    Unlike the normal approximation it stays inside [0, 1] and keeps a width at 0 or ``trials``
    successes (0 of 10 gives [0, 0.28]); no trials gives the uninformative [0, 1].
    """
    if trials <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be in [0, {trials}], got {successes}")
    p = successes / trials
    z2 = z * z
    denom = 1.0 + z2 / trials
    center = (p + z2 / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denom
    return max(0.0, center - half), min(1.0, center + half)


def rate_cell(successes: int, trials: int, **extra: object) -> dict[str, object]:
    """One table cell: the pooled rate, its Wilson interval and the counts it rests on."""
    low, high = wilson(successes, trials)
    return {
        "success_rate": successes / trials if trials else float("nan"),
        "wilson_low": low,
        "wilson_high": high,
        "successes": successes,
        "episodes": trials,
        **extra,
    }
