import json

from perf.gate import ModelMeasurement, best_attempt, evaluate

BUDGETS = {
    "noise_margin": 0.25,
    "models": {"m": {"cpu": {"perf_latency_p99_ratio": {"max": 4.0}, "perf_throughput_ratio": {"min": 0.3}}}},
}


def measurement(p99_us, throughput, queue_us=100.0, infer_us=1000.0):
    served = {
        "perf_latency_p99": p99_us,
        "perf_throughput": throughput,
        "perf_server_queue_us": queue_us,
        "perf_server_compute_input_us": 10.0,
        "perf_server_compute_infer_us": infer_us,
        "perf_server_compute_output_us": 10.0,
        "perf_network_us": 50.0,
        "perf_client_send_us": 1.0,
        "perf_client_recv_us": 1.0,
    }
    return ModelMeasurement(
        "m", 256, 1, served, reference_batch_ms=1.0, reference_rows_per_s=1000.0, reference_p99_ms=1.0
    )


def test_within_budget_and_baseline_passes():
    result = evaluate([measurement(2000, 600)], BUDGETS, {"m": {"perf_latency_p99_ratio": 2.0}})
    assert result.passed, result.breaches


def test_latency_breach_names_the_stage_that_spent_the_time():
    result = evaluate([measurement(9000, 600, queue_us=7000)], BUDGETS, None)
    (breach,) = result.breaches
    assert "perf_latency_p99_ratio 9.00 > budget 4.0" in breach
    assert "most time in server queue" in breach


def test_throughput_below_budget_is_a_breach():
    result = evaluate([measurement(2000, 100)], BUDGETS, None)
    assert any("perf_throughput_ratio 0.10 < budget 0.3" in b for b in result.breaches)


def test_regression_beyond_noise_margin_fails_but_within_it_passes():
    baseline = {"m": {"perf_latency_p99_ratio": 2.0, "perf_throughput_ratio": 0.6}}
    assert evaluate([measurement(2400, 600)], BUDGETS, baseline).passed  # +20% < 25% margin
    result = evaluate([measurement(2600, 600)], BUDGETS, baseline)  # +30%
    assert any("regressed from baseline 2.00" in b for b in result.breaches)


def test_noise_margins_per_metric_judge_p99_and_throughput_apart():
    budgets = {**BUDGETS, "noise_margin": {"perf_latency_p99_ratio": 1.0, "perf_throughput_ratio": 0.5}}
    baseline = {"m": {"perf_latency_p99_ratio": 1.5, "perf_throughput_ratio": 0.8}}
    assert evaluate([measurement(2900, 500)], budgets, baseline).passed  # p99 +93%, throughput -37%
    slower = evaluate([measurement(3100, 500)], budgets, baseline)  # p99 more than doubled
    assert [b.split(" regressed")[0] for b in slower.breaches] == ["m: perf_latency_p99_ratio 3.10"]
    thinner = evaluate([measurement(2000, 390)], budgets, baseline)  # throughput -51%
    assert [b.split(" regressed")[0] for b in thinner.breaches] == ["m: perf_throughput_ratio 0.39"]


def _attempts(breach_counts: list[int]):
    """A measure() that yields measurements tagged with the breach count the judge will see."""
    produced = iter(breach_counts)

    def measure():
        m = measurement(p99_us=1000.0, throughput=500.0)
        m.breach_count = next(produced)
        return m

    return measure, lambda m: m.breach_count


def test_a_one_off_stall_passes_on_the_retry():
    measure, judge = _attempts([2, 0, 5])
    best = best_attempt(measure, judge, attempts=3)
    assert best.breach_count == 0
    assert best.attempts == 2  # stopped at the first clean attempt


def test_a_persistent_regression_keeps_failing_and_reports_its_best_attempt():
    measure, judge = _attempts([2, 1, 2])
    best = best_attempt(measure, judge, attempts=3)
    assert best.breach_count == 1
    assert best.attempts == 3


def test_route_budgets_are_absolute_and_name_where_time_went():
    budgets = {"models": {"route": {"cpu_absolute": {"perf_latency_p99": {"max": 30_000}}}}}
    route = measurement(p99_us=41_000, throughput=150.0, queue_us=25_000)
    route.model = "route"
    route.reference_batch_ms = route.reference_rows_per_s = route.reference_p99_ms = None
    result = evaluate([route], budgets, baseline={"route": {}})
    assert route.ratios == {}
    assert result.breaches == [
        "route: perf_latency_p99 41,000 > budget 30,000; most time in server queue (server queue 25.00 ms, "
        "server compute (input+infer+output) 1.02 ms, network + server send/recv 0.05 ms, client send/recv 0.00 ms)"
    ]
    route.served["perf_latency_p99"] = 20_000
    assert evaluate([route], budgets, None).passed


def test_baselines_are_kept_per_cpu_model(tmp_path):
    from perf.gate import GateResult, read_baseline, write_baseline
    from perf.machine import cpu_model

    path = tmp_path / "cpu.json"
    other = {"Some Other CPU": {"m": {"perf_latency_p99_ratio": 3.0}}}
    path.write_text(json.dumps(other))
    assert read_baseline(path) is None  # this host's CPU has no entry: nothing to compare
    write_baseline(GateResult([measurement(2000, 600)]), path)
    assert read_baseline(path) == {"m": {"perf_latency_p99_ratio": 2.0, "perf_throughput_ratio": 0.6}} | {
        "_machine": read_baseline(path)["_machine"]
    }
    assert read_baseline(path, cpu="Some Other CPU") == other["Some Other CPU"]  # left as it was
    assert read_baseline(path)["_machine"]["cpu"] == cpu_model()


def test_steal_is_the_share_of_cpu_time_given_to_other_guests():
    from perf.machine import steal_percent

    assert steal_percent((100, 1000), (150, 1200)) == 25.0
    assert steal_percent((0, 0), (0, 0)) is None  # /proc/stat unreadable


def test_a_breach_under_steal_says_how_much():
    slow = measurement(9000, 600)
    slow.host_steal_percent, slow.attempts = 23.4, 5
    (breach,) = evaluate([slow], BUDGETS, None).breaches
    assert "host CPU steal 23% (best of 5 attempt(s))" in breach
