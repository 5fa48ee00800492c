"""Paired gains: a policy's reward minus the baseline's on the same execution seeds, with a t-interval.

Execution ``e`` of every configuration shares one seed ([`keras_augtune.seeds.execution_seed()`][keras_augtune.seeds.execution_seed]),
so ``reward[e] - baseline[e]`` removes the luck both trainings shared (initial weights, batch
order). The gain is the mean of those differences; its interval is Student's t-interval of the
mean (95 % by default), which needs at least two pairs.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

__all__ = ["PairedGain", "paired_gain", "mean_interval", "CONFIDENCE"]

#: The confidence of every interval the package reports.
CONFIDENCE = 0.95


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float | None]:
    """The mean of ``values`` and the half-width of its Student-t ``confidence`` interval
    (``None`` with fewer than two values)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_interval needs at least one value.")
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    from scipy import stats

    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2.0, len(values) - 1)) * sd / math.sqrt(len(values))
    return mean, half


@dataclasses.dataclass(frozen=True)
class PairedGain:
    """The mean paired difference ``gain`` over ``pairs`` executions, and its interval ``(low, high)``
    (``None`` with fewer than two pairs)."""

    gain: float
    interval: tuple[float, float] | None
    pairs: int

    @property
    def significant(self) -> bool:
        """The whole interval lies above 0: the policy beat the baseline beyond the noise."""
        return self.interval is not None and self.interval[0] > 0.0


def paired_gain(rewards: Sequence[float], baseline: Sequence[float], confidence: float = CONFIDENCE) -> PairedGain | None:
    """The paired gain of ``rewards`` over ``baseline`` (both indexed by execution, from 0) on the
    executions both have; ``None`` when they share none."""
    pairs = min(len(rewards), len(baseline))
    if pairs == 0:
        return None
    differences = [float(rewards[e]) - float(baseline[e]) for e in range(pairs)]
    gain, half = mean_interval(differences, confidence)
    return PairedGain(gain, None if half is None else (gain - half, gain + half), pairs)
