"""A/B statistics: the intervals against independent references and their coverage."""

from __future__ import annotations

import numpy as np
import pytest

from marquee.rollout.ab_stats import difference_interval, wilson_interval


@pytest.mark.parametrize(("successes", "trials"), [(12, 40), (1, 200), (480, 500)])
def test_wilson_interval_matches_scipy(successes, trials):
    stats = pytest.importorskip("scipy.stats")
    reference = stats.binomtest(successes, trials).proportion_ci(0.95, method="wilson")
    interval = wilson_interval(successes, trials)
    assert interval.estimate == pytest.approx(successes / trials)
    assert interval.low == pytest.approx(reference.low, abs=1e-9)
    assert interval.high == pytest.approx(reference.high, abs=1e-9)


def test_wilson_interval_stays_inside_zero_one():
    assert wilson_interval(0, 10).low == 0.0
    assert wilson_interval(10, 10).high == pytest.approx(1.0)
    with pytest.raises(ValueError, match="successes=11"):
        wilson_interval(11, 10)


def test_difference_interval_covers_the_true_difference_about_95_percent():
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(400):
        treatment = rng.binomial(10, 0.22, 300) / 10
        control = rng.binomial(10, 0.20, 300) / 10
        covered += difference_interval(treatment, control).contains(0.02)
    assert 0.92 <= covered / 400 <= 0.98


def test_difference_interval_needs_two_units():
    with pytest.raises(ValueError, match="at least 2 units"):
        difference_interval(np.array([0.1]), np.array([0.2, 0.3]))
