"""`marquee perf gate` against a real server: a deliberately slowed model must fail it."""

import copy

import pytest

from perf.gate import load_budgets, run_gate
from perf.perf_analyzer import locate

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def ranker_budget():
    budgets = load_budgets()
    return {**budgets, "models": {"ranker_int8": budgets["models"]["ranker_int8"]}}


def test_gate_fails_when_a_slowed_model_is_served_and_names_where_time_went(triton, route_repository, ranker_budget):
    result = run_gate(
        locate(),
        triton.grpc_url,
        route_repository,
        ranker_budget,
        baseline=None,
        served_names={"ranker_int8": "slowed_ranker"},
        attempts=2,
    )
    assert not result.passed
    assert result.measurements[0].attempts == 2  # a real regression fails the retry too
    latency = [b for b in result.breaches if "perf_latency_p99_ratio" in b]
    assert latency, result.breaches
    assert "most time in server compute" in latency[0]
    budget = ranker_budget["models"]["ranker_int8"]["cpu"]["perf_latency_p99_ratio"]["max"]
    assert result.measurements[0].ratios["perf_latency_p99_ratio"] > budget


def test_gate_passes_the_real_ranker_under_a_loose_budget(triton, route_repository, ranker_budget):
    loose = copy.deepcopy(ranker_budget)
    loose["models"]["ranker_int8"]["cpu"] = {
        "perf_latency_p99_ratio": {"max": 50},
        "perf_throughput_ratio": {"min": 0.02},
    }
    result = run_gate(locate(), triton.grpc_url, route_repository, loose, baseline=None)
    assert result.passed, result.breaches


def test_gate_flags_a_regression_against_the_baseline(triton, route_repository, ranker_budget):
    loose = copy.deepcopy(ranker_budget)
    loose["models"]["ranker_int8"]["cpu"] = {}
    # A baseline 20x better than anything this host can do: the real ranker "regressed".
    baseline = {"ranker_int8": {"perf_latency_p99_ratio": 0.1, "perf_throughput_ratio": 20.0}}
    result = run_gate(locate(), triton.grpc_url, route_repository, loose, baseline=baseline)
    assert not result.passed
    assert any("regressed from baseline 0.10" in b for b in result.breaches)
