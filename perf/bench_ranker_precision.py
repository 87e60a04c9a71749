"""Benchmark: ranker FP32 vs INT8, in-process ONNX Runtime and served by Triton, in one run.

    .venv/bin/python -m perf.bench_ranker_precision [--out perf/reports/ranker_precision.json]

Both precisions are measured in the same run, interleaved, on the same machine, so the
INT8/FP32 ratio is meaningful even on a noisy shared host. Needs the exported ranker
(`marquee export ranker`). Not a test: it takes about two minutes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from rich.console import Console
from rich.table import Table

from export.ranker.data import SyntheticWorld
from marquee.paths import model_repository
from marquee.server import TritonServer, free_ports
from marquee.specs.ranker import RANKER_FP32, RANKER_INT8
from perf.machine import machine_info
from perf.perf_analyzer import locate

MODELS = (RANKER_FP32, RANKER_INT8)
console = Console()


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # the same thread budget the served config gives
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def in_process(repository: Path, batch_sizes: list[int], rounds: int, seconds: float) -> dict:
    sessions = {spec.name: _session(repository / spec.name / "1" / spec.artifact) for spec in MODELS}
    rows = SyntheticWorld(0).sample(max(batch_sizes), seed=123)
    results: dict = {}
    for batch in batch_sizes:
        feeds = {"categorical": rows.categorical[:batch], "dense": rows.dense[:batch]}
        samples: dict[str, list[float]] = {name: [] for name in sessions}
        for _ in range(rounds):  # interleave precisions so drift hits both equally
            for name, session in sessions.items():
                session.run(None, feeds)
                calls, start = 0, time.perf_counter()
                while time.perf_counter() - start < seconds:
                    session.run(None, feeds)
                    calls += 1
                samples[name].append(calls * batch / (time.perf_counter() - start))
        results[batch] = {name: statistics.median(values) for name, values in samples.items()}
    return results


def served(repository: Path, batch: int, concurrencies: str) -> dict:
    analyzer = locate()
    out: dict = {}
    with TritonServer(repository, free_ports(), models=[s.name for s in MODELS]) as server:
        for spec in MODELS:
            rows = analyzer.measure(
                spec.name,
                server.grpc_url,
                batch_size=batch,
                concurrency=concurrencies,
                interval_ms=4000,
                extra=tuple(f"--shape={shape}" for shape in spec.perf_analyzer_shapes()),
            )
            out[spec.name] = [row.__dict__ | {"server_compute_us": row.server_compute_us} for row in rows]
    return out


def report_table(bare: dict, serving: dict) -> Table:
    table = Table(title="Ranker FP32 vs INT8 (rows/s; higher is better)")
    for column in ("measurement", "FP32", "INT8", "INT8 / FP32"):
        table.add_column(column, justify="right")
    for batch, by_model in bare.items():
        fp32, int8 = by_model[RANKER_FP32.name], by_model[RANKER_INT8.name]
        table.add_row(f"ONNX Runtime in-process, batch {batch}", f"{fp32:,.0f}", f"{int8:,.0f}", f"{int8 / fp32:.2f}x")
    for fp32_row, int8_row in zip(serving[RANKER_FP32.name], serving[RANKER_INT8.name], strict=True):
        c = int(fp32_row["concurrency"])
        table.add_row(
            f"Triton, perf_analyzer c={c}",
            f"{fp32_row['perf_throughput']:,.0f} (p99 {fp32_row['perf_latency_p99'] / 1000:.2f} ms)",
            f"{int8_row['perf_throughput']:,.0f} (p99 {int8_row['perf_latency_p99'] / 1000:.2f} ms)",
            f"{int8_row['perf_throughput'] / fp32_row['perf_throughput']:.2f}x",
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("perf/reports/ranker_precision.json"))
    parser.add_argument("--batch-sizes", default="64,256,1024")
    parser.add_argument("--served-batch", type=int, default=256)
    parser.add_argument("--concurrency-range", default="1:2")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0, help="per round and precision")
    args = parser.parse_args()

    repository = model_repository()
    missing = [s.name for s in MODELS if not (repository / s.name / "1" / s.artifact).is_file()]
    if missing:
        raise SystemExit(f"not exported: {missing}; run `marquee export ranker` first")
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    with console.status("in-process ONNX Runtime ..."):
        bare = in_process(repository, batch_sizes, args.rounds, args.seconds)
    with console.status("served by Triton, measured by perf_analyzer ..."):
        serving = served(repository, args.served_batch, args.concurrency_range)
    report = {
        "benchmark": "ranker_precision",
        "machine": machine_info(),
        "in_process_rows_per_s": {str(b): v for b, v in bare.items()},
        "served_batch_size": args.served_batch,
        "served": serving,
        "int8_over_fp32": {
            "in_process": {str(b): v[RANKER_INT8.name] / v[RANKER_FP32.name] for b, v in bare.items()},
            "served_throughput": [
                i["perf_throughput"] / f["perf_throughput"]
                for f, i in zip(serving[RANKER_FP32.name], serving[RANKER_INT8.name], strict=True)
            ],
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    console.print(report_table(bare, serving))
    console.print(
        f"report: {args.out}  ({report['machine']['cpu']}, {report['machine']['cores']} cores, "
        f"{report['machine']['date']})"
    )


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
