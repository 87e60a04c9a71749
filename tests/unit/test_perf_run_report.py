import json

import pytest

from perf.run import compare, load, markdown, write_report

MACHINE = {"cpu": "test cpu", "cores": 2, "gpu": None, "date": "2026-11-22T00:00:00", "tritonserver": "2.51.0"}


def run(throughput, p99_us):
    row = {
        "concurrency": 1.0,
        "perf_throughput": throughput,
        "perf_latency_p50": p99_us / 2,
        "perf_latency_p99": p99_us,
        "perf_server_queue_us": 100.0,
        "perf_server_compute_input_us": 10.0,
        "perf_server_compute_infer_us": 500.0,
        "perf_server_compute_output_us": 10.0,
        "server_compute_us": 520.0,
    }
    return {"machine": MACHINE, "concurrency": "1", "models": {"ranker_int8": {"batch_size": 64, "rows": [row]}}}


def test_compare_reports_change_and_direction_per_metric():
    rows = {r["metric"]: r for r in compare(run(1000, 4000), run(1200, 5000))}
    assert rows["perf_throughput"]["change"] == pytest.approx(0.2) and rows["perf_throughput"]["better"]
    assert rows["perf_latency_p99"]["change"] == pytest.approx(0.25) and not rows["perf_latency_p99"]["better"]


def test_compare_skips_models_missing_from_the_earlier_run():
    earlier = run(1000, 4000)
    earlier["models"] = {}
    assert compare(earlier, run(1200, 5000)) == []


def test_markdown_report_labels_the_machine_and_lists_each_load_level():
    text = markdown(run(1000, 4000))
    assert "test cpu, 2 cores, GPU: none" in text
    assert "| ranker_int8 | 64 | 1 | 1,000 | 2.00 | 4.00 | 0.10 | 0.52 |" in text


def test_report_folder_round_trips_through_load(tmp_path):
    written = write_report(run(1000, 4000), tmp_path / "run")
    assert (tmp_path / "run" / "results.json") in written and (tmp_path / "run" / "report.md") in written
    assert load(tmp_path / "run") == json.loads((tmp_path / "run" / "results.json").read_text())


def test_load_names_the_missing_results(tmp_path):
    with pytest.raises(FileNotFoundError, match="no perf results here"):
        load(tmp_path)
