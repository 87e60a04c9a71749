import pytest

from perf.results import parse_csv

HEADER = (
    "Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute Input,"
    "Server Compute Infer,Server Compute Output,Client Recv,p50 latency,p90 latency,p95 latency,p99 latency\n"
)


def test_csv_columns_map_to_model_analyzer_metric_names(tmp_path):
    path = tmp_path / "pa.csv"
    path.write_text(HEADER + "1,1235.34,2,158,287,16,247,89,1,785,893,925,998\n")
    (row,) = parse_csv(path)
    assert row.concurrency == 1 and row.perf_throughput == pytest.approx(1235.34)
    assert row.perf_latency_p99 == 998 and row.perf_server_queue_us == 287
    assert row.server_compute_us == 16 + 247 + 89


def test_csv_without_latency_columns_is_rejected_by_name(tmp_path):
    path = tmp_path / "pa.csv"
    path.write_text("Concurrency,Inferences/Second\n1,10\n")
    with pytest.raises(ValueError, match="perf_latency_p50"):
        parse_csv(path)


def test_empty_csv_is_rejected(tmp_path):
    path = tmp_path / "pa.csv"
    path.write_text(HEADER)
    with pytest.raises(ValueError, match="no measurement rows"):
        parse_csv(path)
