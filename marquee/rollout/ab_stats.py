"""A/B statistics for click-through rates: per-cohort intervals and the lift's interval.

Pure numpy. The unit of randomisation is the user (cohorts come from a hash of the user
id), and one user's impressions are not independent draws, so the lift's interval is
computed on per-user CTRs (Welch's normal approximation for a difference of means). The
per-cohort intervals are Wilson score intervals over impressions, for display.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z_95 = 1.959963984540054


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    @property
    def width(self) -> float:
        return self.high - self.low


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> Interval:
    """Wilson score interval of a binomial proportion (well-behaved near 0 and 1)."""
    if trials <= 0:
        raise ValueError(f"trials={trials}; must be > 0")
    if not 0 <= successes <= trials:
        raise ValueError(f"successes={successes}; allowed: 0 to trials={trials}")
    p = successes / trials
    denominator = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half))


def difference_interval(treatment: np.ndarray, control: np.ndarray, z: float = Z_95) -> Interval:
    """mean(treatment) - mean(control) with Welch's normal-approximation interval."""
    treatment, control = np.asarray(treatment, float), np.asarray(control, float)
    if len(treatment) < 2 or len(control) < 2:
        raise ValueError(f"need at least 2 units per cohort; got {len(treatment)} treatment, {len(control)} control")
    difference = float(treatment.mean() - control.mean())
    standard_error = math.sqrt(treatment.var(ddof=1) / len(treatment) + control.var(ddof=1) / len(control))
    return Interval(difference, difference - z * standard_error, difference + z * standard_error)
