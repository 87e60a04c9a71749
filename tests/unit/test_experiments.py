"""The experiment file, cohorts, guardrails and shadow agreement: pure logic, no server."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from marquee.rollout.files import PROJECT_EXPERIMENTS
from marquee.routes.recommend.agreement import spearman, top_k, top_k_overlap
from marquee.routes.recommend.experiment import (
    CONTROL,
    NO_COHORT,
    TREATMENT,
    ExperimentError,
    ExperimentFile,
    Guardrails,
    GuardrailWindow,
    PageOutcome,
    RollbackRecord,
    assign_cohort,
    cohort_position,
    evaluate_guardrails,
    p99,
    parse_experiment,
    ranker_version,
)

RUNNING = b"""
version: "t1"
ranker:
  name: v2 vs v1
  control: 1
  treatment: 2
  treatment_share: 0.3
  salt: s1
  shadow: 3
"""


def test_project_experiment_file_parses_with_no_treatment():
    experiment = parse_experiment(PROJECT_EXPERIMENTS.read_bytes())
    assert experiment.control == 1 and not experiment.running
    assert assign_cohort(7, experiment) == NO_COHORT


def test_cohort_is_stable_and_matches_the_split():
    experiment = parse_experiment(RUNNING)
    cohorts = [assign_cohort(user, experiment) for user in range(20_000)]
    assert cohorts == [assign_cohort(user, experiment) for user in range(20_000)]
    share = cohorts.count(TREATMENT) / len(cohorts)
    assert abs(share - 0.3) < 0.015  # 4.6 binomial standard deviations
    assert set(cohorts) == {CONTROL, TREATMENT}


def test_new_salt_reshuffles_cohorts():
    positions_a = np.array([cohort_position(u, "a") for u in range(5000)])
    positions_b = np.array([cohort_position(u, "b") for u in range(5000)])
    assert abs(np.corrcoef(positions_a, positions_b)[0, 1]) < 0.05
    assert 0.0 <= positions_a.min() and positions_a.max() < 1.0


def test_rolled_back_experiment_sends_everyone_to_control():
    experiment = parse_experiment(RUNNING)
    assert {assign_cohort(u, experiment, rolled_back=True) for u in range(500)} == {CONTROL}
    assert ranker_version(CONTROL, experiment) == 1
    assert ranker_version(TREATMENT, experiment) == 2
    assert ranker_version(NO_COHORT, None) == -1


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (b"treatment_share: 1.5", "treatment_share`=1.5; allowed: a number from 0 to 1"),
        (b"control: zero", "control`='zero'; allowed: a model version"),
        (b"treatment: -2", "treatment`=-2; allowed: a model version"),
        (b"colour: red", "unknown key(s) ['colour']"),
        (b"shadow_in_flight: 0", "shadow_in_flight`=0; allowed: an integer from 1 to 64"),
        (b"guardrails: {p99_ms: fast}", "guardrails.p99_ms`='fast'"),
    ],
)
def test_malformed_experiment_names_field_value_and_allowed(edit, message):
    key = edit.split(b":", 1)[0]
    lines = [line for line in RUNNING.splitlines() if not line.strip().startswith(key + b":")]
    with pytest.raises(ExperimentError, match=None) as error:
        parse_experiment(b"\n".join(lines) + b"\n  " + edit + b"\n")
    assert message in str(error.value)


def test_treatment_share_without_treatment_is_refused():
    text = RUNNING.replace(b"treatment: 2", b"treatment: null")
    with pytest.raises(ExperimentError, match="needs `treatment`"):
        parse_experiment(text)


def test_experiment_file_keeps_previous_on_a_bad_edit(tmp_path):
    path = tmp_path / "experiments.yaml"
    path.write_bytes(RUNNING)
    watched = ExperimentFile(str(path), recheck_s=0.0)
    assert watched.current().treatment == 2
    path.write_bytes(b"version: broken\nranker: [")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    assert watched.current().treatment == 2
    assert "not reloaded, previous one kept" in watched.last_error
    path.write_bytes(RUNNING.replace(b"treatment_share: 0.3", b"treatment_share: 0.5"))
    assert watched.current().treatment_share == 0.5 and watched.last_error is None
    path.unlink()
    assert watched.current() is None


def _pages(count, seconds=0.01, outcome="ok", at=100.0):
    return [PageOutcome(at, seconds, outcome) for _ in range(count)]


def test_guardrails_judge_error_degraded_and_tail():
    rails = Guardrails(window_s=60, min_pages=50, p99_ms=30, max_degraded_rate=0.05, max_error_rate=0.01)
    assert evaluate_guardrails(_pages(49, seconds=1.0), rails) is None  # too few to judge
    assert evaluate_guardrails(_pages(100), rails) is None
    assert evaluate_guardrails(_pages(98) + _pages(2, outcome="error"), rails).startswith("error rate 0.020")
    assert evaluate_guardrails(_pages(90) + _pages(10, outcome="degraded"), rails).startswith("degraded rate 0.100")
    assert evaluate_guardrails(_pages(98) + _pages(2, seconds=0.05), rails).startswith("p99 50.0 ms > 30 ms")
    assert evaluate_guardrails(_pages(99) + _pages(1, seconds=0.05), rails) is None  # one slow page in 100 is p99.x


def test_guardrail_window_forgets_old_pages():
    window = GuardrailWindow()
    rails = Guardrails(window_s=10, min_pages=5, p99_ms=30)
    for page in _pages(10, seconds=1.0, at=0.0):
        window.add(page)
    assert window.breach(rails, now=5.0).startswith("p99")
    assert window.breach(rails, now=20.0) is None  # all aged out


def test_p99_is_nearest_rank():
    assert p99(list(range(1, 101))) == 99
    assert p99([5.0]) == 5.0


def test_rollback_record_applies_to_its_experiment_only(tmp_path):
    record = RollbackRecord(str(tmp_path / "rb.json"), recheck_s=0.0)
    first, second = parse_experiment(RUNNING), parse_experiment(RUNNING.replace(b"s1", b"s2"))
    assert record.reason(first) is None
    record.write(first, "guardrail: p99")
    assert record.reason(first) == "guardrail: p99"
    assert record.reason(second) is None


def test_top_k_overlap_and_spearman():
    ids = np.arange(10)
    scores = np.linspace(1.0, 0.1, 10)
    assert top_k_overlap(ids, scores, scores, 3) == 1.0
    assert top_k_overlap(ids, scores, scores[::-1], 3) == 0.0
    assert top_k_overlap(ids, scores, scores, 50) == 1.0  # k larger than the candidates
    assert spearman(scores, scores * 2 + 1) == pytest.approx(1.0)
    assert spearman(scores, -scores) == pytest.approx(-1.0)
    assert list(top_k(np.array([5, 3, 9]), np.array([0.5, 0.5, 0.9]), 2)) == [9, 3]  # ties: smaller id


def test_spearman_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    a = rng.integers(0, 5, 200).astype(float)
    b = a + rng.normal(0, 2, 200)
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)


def test_rollout_file_write_refuses_bad_values_and_keeps_history(tmp_path):
    from marquee.rollout.files import RouteFiles

    files = RouteFiles(tmp_path, "recommend")
    files.write({"name": "a", "control": 1, "salt": "s"}, "reset", "test")
    with pytest.raises(ExperimentError, match="treatment_share`=2"):
        files.write({"name": "b", "control": 1, "treatment": 2, "treatment_share": 2, "salt": "s"}, "start", "bad")
    assert files.read().name == "a"
    assert [entry["action"] for entry in files.recent_history()] == ["reset"]


def test_rollback_holds_in_this_instance_when_the_record_cannot_be_written(tmp_path):
    record = RollbackRecord(str(tmp_path / "missing-folder" / "rb.json"), recheck_s=0.0)
    experiment = parse_experiment(RUNNING)
    with pytest.raises(OSError):
        record.write(experiment, "guardrail: p99")
    assert record.reason(experiment) == "guardrail: p99"
    assert {assign_cohort(u, experiment, rolled_back=True) for u in range(100)} == {CONTROL}
