"""perf_analyzer's CSV (`-f`) parsed through one table of column names into typed rows.

Metric names follow Model Analyzer (`perf_throughput`, `perf_latency_p99`, ...) so that
budgets and reports speak the language Triton users already know. Latencies are in
microseconds, as perf_analyzer writes them.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, fields
from pathlib import Path

# perf_analyzer CSV column -> our field name
COLUMNS: dict[str, str] = {
    "Concurrency": "concurrency",
    "Request Rate": "request_rate",
    "Inferences/Second": "perf_throughput",
    "Client Send": "perf_client_send_us",
    "Network+Server Send/Recv": "perf_network_us",
    "Server Queue": "perf_server_queue_us",
    "Server Compute Input": "perf_server_compute_input_us",
    "Server Compute Infer": "perf_server_compute_infer_us",
    "Server Compute Output": "perf_server_compute_output_us",
    "Client Recv": "perf_client_recv_us",
    "p50 latency": "perf_latency_p50",
    "p90 latency": "perf_latency_p90",
    "p95 latency": "perf_latency_p95",
    "p99 latency": "perf_latency_p99",
    "Avg latency": "perf_latency_avg",
}


@dataclass(frozen=True)
class PerfRow:
    """One load level of one perf_analyzer run."""

    perf_throughput: float
    perf_latency_p50: float
    perf_latency_p99: float
    perf_server_queue_us: float = 0.0
    perf_server_compute_input_us: float = 0.0
    perf_server_compute_infer_us: float = 0.0
    perf_server_compute_output_us: float = 0.0
    perf_network_us: float = 0.0
    perf_client_send_us: float = 0.0
    perf_client_recv_us: float = 0.0
    perf_latency_p90: float = 0.0
    perf_latency_p95: float = 0.0
    perf_latency_avg: float = 0.0
    concurrency: float = 0.0
    request_rate: float = 0.0

    @property
    def server_compute_us(self) -> float:
        return (
            self.perf_server_compute_input_us + self.perf_server_compute_infer_us + self.perf_server_compute_output_us
        )


def parse_csv(path: Path) -> list[PerfRow]:
    known = {f.name for f in fields(PerfRow)}
    rows = []
    with Path(path).open(newline="") as f:
        for record in csv.DictReader(f):
            values = {COLUMNS[k]: float(v) for k, v in record.items() if k in COLUMNS and v not in ("", None)}
            missing = {"perf_throughput", "perf_latency_p50", "perf_latency_p99"} - values.keys()
            if missing:
                raise ValueError(f"{path}: perf_analyzer CSV lacks columns for {sorted(missing)}; got {list(record)}")
            rows.append(PerfRow(**{k: v for k, v in values.items() if k in known}))
    if not rows:
        raise ValueError(f"{path}: perf_analyzer CSV has no measurement rows")
    return rows
