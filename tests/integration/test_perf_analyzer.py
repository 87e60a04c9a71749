"""perf_analyzer (through the private glibc runtime where needed) against the served ranker."""

import pytest

from perf.perf_analyzer import locate
from perf.results import parse_csv

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def perf_analyzer(cache_root):
    return locate(install=True)


@pytest.mark.parametrize("model", ["ranker_fp32", "ranker_int8"])
def test_perf_analyzer_measures_the_ranker_from_metadata_alone(triton, perf_analyzer, tmp_path, model):
    csv_path = tmp_path / f"{model}.csv"
    perf_analyzer.run(
        [
            "-m",
            model,
            "-u",
            triton.grpc_url,
            "-i",
            "grpc",
            "-b",
            "8",
            "--concurrency-range",
            "1:2",
            "--measurement-interval",
            "1000",
            "--stability-percentage",
            "50",
            "-f",
            str(csv_path),
        ],
        timeout_s=240,
    )
    rows = parse_csv(csv_path)
    assert [row.concurrency for row in rows] == [1.0, 2.0]
    for row in rows:
        assert row.perf_throughput > 0
        assert 0 < row.perf_latency_p50 <= row.perf_latency_p99
        assert row.server_compute_us > 0  # the server-side split came back


def test_perf_run_sweeps_a_model_and_the_route_into_a_report(triton, route_repository, perf_analyzer, tmp_path):
    from perf.run import sweep, write_report

    results = sweep(
        perf_analyzer,
        triton.grpc_url,
        route_repository,
        ["ranker_int8", "recommend_generous"],
        "1",
        16,
        interval_ms=1000,
    )
    assert set(results["models"]) == {"ranker_int8", "recommend_generous"}
    assert results["models"]["recommend_generous"]["batch_size"] == 1  # the route is unbatched
    for entry in results["models"].values():
        (row,) = entry["rows"]
        assert row["perf_throughput"] > 0 and row["perf_latency_p99"] > 0
    written = write_report(results, tmp_path / "run")
    assert "| recommend_generous | 1 | 1 |" in (tmp_path / "run" / "report.md").read_text()
    assert len(written) >= 2
