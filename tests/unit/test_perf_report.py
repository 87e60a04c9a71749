"""`marquee perf report`: each benchmark's headline figures, read from the reports the
benchmarks themselves wrote (committed under perf/reports/), and the one-run assembly."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from marquee.paths import model_repository
from perf import report as one_run
from perf.bench_serving_efficiency import WORKLOADS, bare_loop
from perf.report import BENCHMARKS, Benchmark, Headline, markdown, plot_ratios, run_benchmark

ROOT = Path(__file__).resolve().parents[2]
# The issue's targets (issue 16) and the route SLO: the report must judge against these.
TARGETS = {
    "image moderation": {1.5},
    "serving efficiency": {0.7},
    "dynamic batching": {3.0},
    "Ray Serve (tuned)": {2.0},
    "transcription": {2.0, 1.5},
    "recommend": {25.0, 0.02},
}


@pytest.mark.parametrize("benchmark", BENCHMARKS, ids=lambda b: b.name)
def test_each_committed_report_yields_headlines_against_the_issues_targets(benchmark: Benchmark):
    path = ROOT / benchmark.report
    if not path.is_file():
        pytest.skip(f"{benchmark.report} is not committed yet")
    headlines = benchmark.summarise(json.loads(path.read_text()))
    assert headlines, f"{benchmark.name}: no headline read from {benchmark.report}"
    for headline in headlines:
        assert headline.ratio > 0 and headline.marquee > 0, headline
        if headline.peer is not None:
            assert headline.ratio == pytest.approx(headline.marquee / headline.peer, rel=1e-6), headline
        if headline.comparison in TARGETS:
            assert headline.target in TARGETS[headline.comparison], headline


def test_a_missed_target_says_by_how_much_both_ways():
    faster = Headline("x", "rows/s", 3.0, 2.0, 1.5, 2.0)
    assert not faster.met and faster.shortfall == "missed: 1.50 of 2 (75% of target)"
    assert Headline("x", "rows/s", 5.0, 2.0, 2.5, 2.0).shortfall == "met"
    slow = Headline("x", "p99 ms", 26.0, None, 26.0, 25.0, higher_is_better=False)
    assert not slow.met and slow.shortfall == "missed: 26.00 against at most 25"
    assert Headline("x", "p99 ms", 20.0, None, 20.0, 25.0, higher_is_better=False).met
    # Past its ratio, but not under the target's condition ("at equal or lower WER"): missed.
    worse = Headline("x", "audio s/s", 3.0, 2.0, 1.5, 1.5, condition_failed="WER 0.103 is worse than 0.087")
    assert not worse.met and worse.shortfall == "missed: WER 0.103 is worse than 0.087"


def _report_with(headlines: list[Headline]) -> dict:
    return {
        "date": "2026-12-03T16:00:00+00:00",
        "finished": "2026-12-03T16:40:00+00:00",
        "machine": {"cpu": "test CPU", "cores": 2, "onnxruntime": "1", "tritonserver": "2.51"},
        "benchmarks": {
            "bench": {
                "report": "perf/reports/bench.json",
                "wall_s": 12.0,
                "load_average_before": [0.5, 0.5, 0.5],
                "load_average_after": [1.9, 1.0, 0.7],
                "cpu_steal_percent": 3.0,
                "headlines": [h.__dict__ | {"met": h.met, "shortfall": h.shortfall} for h in headlines],
            }
        },
    }


def test_markdown_has_a_row_per_headline_with_its_verdict_and_the_host_state(tmp_path):
    headlines = [
        Headline("dynamic batching", "rows/s on vs off", 6000.0, 2500.0, 2.4, 3.0, note="c=13"),
        Headline("recommend", "p99 ms, 1,000,000 titles", 21.0, None, 21.0, 25.0, higher_is_better=False),
    ]
    text = markdown(_report_with(headlines))
    assert "| rows/s on vs off | 6,000 | 2,500 | 2.4 | >= 3 | missed: 2.40 of 3 (80% of target) | c=13 |" in text
    assert "| p99 ms, 1,000,000 titles | 21 | - | 21 | <= 25 | met |  |" in text
    assert "load average 0.5 before, 1.9 after; CPU steal 3%" in text
    pytest.importorskip("matplotlib")
    png = plot_ratios(_report_with(headlines), tmp_path / "ratios.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_benchmark_that_fails_or_writes_nothing_fails_the_report(tmp_path):
    stale = tmp_path / "stale.json"
    stale.write_text("{}")
    # `python -m this` exits 0 and writes no report: the old file must not be read as new.
    quiet = Benchmark("quiet", "this", (), stale, lambda report: [])
    os.utime(stale, (time.time() - 60, time.time() - 60))
    with pytest.raises(RuntimeError, match="did not write"):
        run_benchmark(quiet, tmp_path)
    broken = Benchmark("broken", "perf.no_such_benchmark", (), stale, lambda report: [], needs="nothing")
    with pytest.raises(RuntimeError, match=r"broken \(needs nothing\) exited with 1; see .*broken.log"):
        run_benchmark(broken, tmp_path)
    assert "No module named" in (tmp_path / "broken.log").read_text()


def test_a_missed_target_lists_what_costs_the_rest_and_a_met_one_does_not():
    headlines = [
        Headline("dynamic batching", "rows/s on vs off", 6000.0, 2500.0, 2.4, 3.0, costs="0.55 ms per request"),
        Headline("recommend", "p99 ms", 21.0, None, 21.0, 25.0, higher_is_better=False, costs="not shown"),
    ]
    text = markdown(_report_with(headlines))
    assert "What costs the rest:\n- rows/s on vs off: 0.55 ms per request." in text
    assert "not shown" not in text


def test_the_batching_shortfall_is_told_in_cpu_per_row_from_the_runs_own_figures():
    sweep = {"concurrency": 4.0, "rows_per_s": 2000.0, "p99_ms": 4.0, "queue_ms": 1.0, "compute_ms": 0.5}
    report = {
        "machine": {"cores": 2},
        "dynamic_batching": {
            "p99_target_ms": 10.0,
            "best_under_target": {"ranker_int8": sweep | {"rows_per_s": 4000.0}, "ranker_int8_nobatch": sweep},
        },
    }
    (headline,) = one_run._batching(report)
    # 2 cores / 2000 rows/s = 1 ms per row unbatched, 0.5 ms batched; 3x needs 0.33 ms.
    assert "1.00 ms without batching, 0.50 ms with it; 3x needs 0.33 ms" in headline.costs
    assert "0.50 ms is the model's execution and 0.50 ms is gRPC" in headline.costs


def _one_run_on_disk(tmp_path, benchmark_date: str) -> Path:
    tmp_path.mkdir()
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"machine": {"date": benchmark_date}}))
    out = tmp_path / "one_run"
    out.mkdir()
    report = _report_with([]) | {
        "benchmarks": {"recommend": {**_report_with([])["benchmarks"]["bench"], "report": str(bench)}}
    }
    (out / "report.json").write_text(json.dumps(report))
    return out


def test_resummarise_reads_the_runs_own_reports_by_their_recorded_date_not_mtime(tmp_path, monkeypatch):
    seen = []
    fake = Benchmark("recommend", "perf.bench_recommend", (), Path("unused"), lambda r: seen.append(r) or [])
    monkeypatch.setattr(one_run, "BENCHMARKS", (fake,))
    monkeypatch.setattr(one_run, "plot_ratios", lambda report, path: None)
    inside = _one_run_on_disk(tmp_path / "a", "2026-12-03T16:20:00+00:00")
    os.utime(
        Path(json.loads((inside / "report.json").read_text())["benchmarks"]["recommend"]["report"])
    )  # as a clone does
    one_run.resummarise(inside)
    assert seen == [{"machine": {"date": "2026-12-03T16:20:00+00:00"}}]
    later = _one_run_on_disk(tmp_path / "b", "2026-12-03T18:00:00+00:00")
    with pytest.raises(RuntimeError, match="outside this run"):
        one_run.resummarise(later)


@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda w: w.spec.name)
def test_each_efficiency_workload_feeds_its_exported_onnx_file(workload):
    """The bare loop's tensors are what the served model accepts: the exported file runs on them."""
    onnx_path = model_repository() / workload.spec.name / str(workload.spec.version) / workload.spec.artifact
    if not onnx_path.is_file():
        pytest.skip(f"{workload.spec.name} is not exported here")
    result = bare_loop(workload, onnx_path, concurrency=2, seconds=0.05)
    assert result["rows_per_s"] > 0 and result["p99_ms"] >= result["p50_ms"] > 0
    args = workload.analyzer_args()
    for tensor in workload.spec.inputs:
        if any(isinstance(d, str) for d in tensor.dims):  # perf_analyzer needs every dynamic axis sized
            assert f"{tensor.name}:{','.join(map(str, workload.shape(tensor)[1:]))}" in args
