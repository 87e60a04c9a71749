"""Serving efficiency: served throughput over a bare in-process ONNX Runtime loop, per model.

    .venv/bin/python -m perf.bench_serving_efficiency [--concurrency 1,2,4] [--seconds 4]

For the ranker, the MiniLM classifier, the Whisper encoder and the NudeNet detector, on
the same ONNX file and the same thread budget:
- bare: one ONNX Runtime session per served instance, each with the served instance's
  intra-op threads, driven by `c` Python threads (ONNX Runtime releases the GIL);
- served over gRPC: perf_analyzer at concurrency `c`, zero-filled tensors (as the bare loop);
- served over system shared memory: the same, with perf_analyzer's `--shared-memory
  system`, so tensors skip the gRPC wire (what a co-located caller, such as a BLS route
  inside Triton, pays instead).
Efficiency = served rows/s / bare rows/s at the same concurrency. A model meets the 0.7
target at a concurrency whose served p99 stays within P99_SLACK times the bare loop's own
p99 there ("equal p99" on a host whose absolute speed varies). Past one caller per
instance the bare figures are derived, not measured (see `bare_loop`).
Writes perf/reports/serving_efficiency.json. Not a test: it takes a few minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from marquee.paths import model_repository
from marquee.server import TritonServer, free_ports
from marquee.specs.base import ModelSpec
from marquee.specs.moderation_image import NUDENET
from marquee.specs.moderation_text import TEXT_CLASSIFIER_INT8
from marquee.specs.ranker import RANKER_INT8
from marquee.specs.whisper import WHISPER_ENCODER_INT8
from perf.gate import ZERO_DATA, measure_served
from perf.machine import report_header
from perf.perf_analyzer import locate

console = Console()
TARGET = 0.7
P99_SLACK = 2.0  # served p99 within twice the bare loop's p99 counts as "equal p99"


@dataclass(frozen=True)
class Workload:
    """One model, and the request each contender sends it."""

    spec: ModelSpec
    batch: int
    dynamic_dims: dict[str, int] = field(default_factory=dict)  # named axes -> size used

    @property
    def instances(self) -> int:
        return sum(group.count for group in self.spec.instance_groups)

    @property
    def intra_threads(self) -> int:
        return int(self.spec.parameters.get("intra_op_thread_count", "1"))

    def shape(self, tensor) -> list[int]:
        return [self.batch, *(self.dynamic_dims[d] if isinstance(d, str) else d for d in tensor.dims)]

    def feeds(self) -> dict[str, np.ndarray]:
        return {t.name: np.zeros(self.shape(t), t.dtype.numpy) for t in self.spec.inputs}

    def analyzer_args(self) -> tuple[str, ...]:
        shapes = []
        for tensor in self.spec.inputs:
            if any(isinstance(d, str) for d in tensor.dims):
                shapes += ["--shape", f"{tensor.name}:{','.join(map(str, self.shape(tensor)[1:]))}"]
        return (*ZERO_DATA, *shapes)

    def output_bytes(self) -> int:
        sizes = [int(np.prod(self.shape(t))) * np.dtype(t.dtype.numpy).itemsize for t in self.spec.outputs]
        return max(sizes)


WORKLOADS = (
    Workload(RANKER_INT8, batch=64),
    Workload(TEXT_CLASSIFIER_INT8, batch=16, dynamic_dims={"sequence": 64}),
    Workload(WHISPER_ENCODER_INT8, batch=1),
    Workload(NUDENET, batch=1),
)


def bare_loop(workload: Workload, onnx_path: Path, concurrency: int, seconds: float) -> dict:
    """The ONNX file in-process, with the served model's thread budget.

    Up to `instances` callers each get their own session, as Triton runs one batch per
    instance at a time. More callers than instances cannot go faster than the sessions
    do: they queue. Rather than measure that queue (a contended lock is unfair, and
    starves some callers), the figure is derived from the measurement at `instances`
    callers: the same throughput, and each call waiting for ceil(callers / instances)
    calls ("derived": true)."""
    measured = min(concurrency, workload.instances)
    result = _bare_measurement(workload, onnx_path, measured, seconds)
    if measured == concurrency:
        return result
    waits = math.ceil(concurrency / workload.instances)
    return result | {
        "concurrency": concurrency,
        "p50_ms": result["p50_ms"] * waits,
        "p99_ms": result["p99_ms"] * waits,
        "derived": True,
    }


def _bare_measurement(workload: Workload, onnx_path: Path, callers: int, seconds: float) -> dict:
    """`callers` threads, each with its own session (ONNX Runtime releases the GIL)."""
    import onnxruntime as ort

    def session():
        options = ort.SessionOptions()
        options.intra_op_num_threads = workload.intra_threads
        options.inter_op_num_threads = 1
        return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

    sessions = [session() for _ in range(callers)]
    feeds = workload.feeds()
    for s in sessions:
        s.run(None, feeds)
    latencies: list[list[float]] = [[] for _ in range(callers)]
    deadline = time.perf_counter() + seconds

    def worker(index: int) -> None:
        run = sessions[index].run
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            run(None, feeds)
            latencies[index].append(time.perf_counter() - start)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(callers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    ms = np.concatenate([np.array(x) for x in latencies]) * 1000
    return {
        "concurrency": callers,
        "rows_per_s": len(ms) * workload.batch / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def served(analyzer, server: TritonServer, workload: Workload, concurrency: int, transport: str) -> dict:
    extra = workload.analyzer_args()
    if transport == "system_shm":
        # Registering shared memory is a restricted API: perf_analyzer sends the admin key.
        (header,) = (f"{name}:{value}" for name, value in server.admin_key.grpc_headers().items())
        extra = (*extra, "--shared-memory", "system", "--output-shared-memory-size", str(workload.output_bytes()))
        extra = (*extra, "-H", header)
    row = measure_served(analyzer, server.grpc_url, workload.spec.name, workload.batch, concurrency, extra)
    return {
        "concurrency": concurrency,
        "rows_per_s": row.perf_throughput,
        "p50_ms": row.perf_latency_p50 / 1000,
        "p99_ms": row.perf_latency_p99 / 1000,
        "queue_ms": row.perf_server_queue_us / 1000,
        "compute_input_ms": row.perf_server_compute_input_us / 1000,
        "compute_infer_ms": row.perf_server_compute_infer_us / 1000,
        "compute_output_ms": row.perf_server_compute_output_us / 1000,
        "client_send_recv_ms": (row.perf_client_send_us + row.perf_client_recv_us) / 1000,
    }


def verdict(bare: list[dict], served_rows: list[dict]) -> dict:
    """Efficiency per concurrency, and the best one where served p99 is within the slack."""
    rows = []
    for reference, row in zip(bare, served_rows, strict=True):
        rows.append(
            {
                "concurrency": row["concurrency"],
                "efficiency": row["rows_per_s"] / reference["rows_per_s"],
                "p99_within_slack": row["p99_ms"] <= P99_SLACK * reference["p99_ms"],
            }
        )
    eligible = [r for r in rows if r["p99_within_slack"]]
    best = max(eligible, key=lambda r: r["efficiency"]) if eligible else None
    return {"per_concurrency": rows, "best": best, "met": bool(best and best["efficiency"] >= TARGET)}


def measure(workload: Workload, concurrencies: list[int], seconds: float, analyzer) -> dict:
    repository = model_repository()
    onnx_path = repository / workload.spec.name / str(workload.spec.version) / workload.spec.artifact
    if not onnx_path.is_file():
        raise SystemExit(f"{workload.spec.name} is not exported ({onnx_path}); run `marquee export` first")
    bare = [bare_loop(workload, onnx_path, c, seconds) for c in concurrencies]
    transports = {}
    with TritonServer(repository, free_ports(), models=[workload.spec.name]) as server:
        for transport in ("grpc", "system_shm"):
            transports[transport] = [served(analyzer, server, workload, c, transport) for c in concurrencies]
    return {
        "batch": workload.batch,
        "dynamic_dims": workload.dynamic_dims,
        "thread_budget": f"{workload.instances} instance(s) x {workload.intra_threads} intra-op thread(s)",
        "bare_in_process": bare,
        "served": transports,
        "verdict": {transport: verdict(bare, rows) for transport, rows in transports.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", default="1,2,4")
    parser.add_argument("--seconds", type=float, default=4.0, help="bare loop, per concurrency")
    parser.add_argument("--models", default=",".join(w.spec.name for w in WORKLOADS))
    parser.add_argument("--out", type=Path, default=Path("perf/reports/serving_efficiency.json"))
    args = parser.parse_args()
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    chosen = [w for w in WORKLOADS if w.spec.name in args.models.split(",")]
    import os

    report = report_header("serving_efficiency", os.getloadavg())
    report |= {"target": TARGET, "p99_slack": P99_SLACK, "models": {}}
    analyzer = locate()
    for workload in chosen:
        with console.status(f"{workload.spec.name} ..."):
            report["models"][workload.spec.name] = measure(workload, concurrencies, args.seconds, analyzer)
    report["load_average_at_end"] = list(os.getloadavg())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    console.print(f"report: {args.out}")


def print_table(report: dict) -> None:
    table = Table(title=f"served / bare rows/s (served p99 ms); target {TARGET}")
    for column in ("model", "transport", "c", "bare rows/s", "served rows/s", "efficiency", "p99 ms (bare)"):
        table.add_column(column, justify="right")
    for name, result in report["models"].items():
        for transport, rows in result["served"].items():
            for reference, row in zip(result["bare_in_process"], rows, strict=True):
                table.add_row(
                    name,
                    transport,
                    str(row["concurrency"]),
                    f"{reference['rows_per_s']:,.0f}",
                    f"{row['rows_per_s']:,.0f}",
                    f"{row['rows_per_s'] / reference['rows_per_s']:.2f}",
                    f"{row['p99_ms']:.1f} ({reference['p99_ms']:.1f})",
                )
    console.print(table)


if __name__ == "__main__":
    main()
