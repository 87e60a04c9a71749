"""Side by side, in one run: dynamic batching on vs off at equal p99, and serving efficiency.

    .venv/bin/python -m perf.bench_side_by_side [--p99-ms 4] [--out perf/reports/side_by_side.json]

- Batching: the INT8 ranker as committed (dynamic batching) and the same model with
  dynamic batching removed, both driven by perf_analyzer with one-row requests over a
  concurrency sweep. Compared by the best throughput each reaches with p99 under a target.
- Efficiency: served rows/s divided by the same ONNX file's rows/s in a bare in-process
  ONNX Runtime loop with the same thread budget (1 intra-op thread), at equal batch size.
Not a test: it takes a few minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from marquee import render
from marquee.paths import model_repository
from marquee.server import TritonServer, free_ports
from marquee.specs.ranker import RANKER_INT8
from perf.gate import ZERO_DATA, reference_speed
from perf.machine import machine_info
from perf.perf_analyzer import locate

console = Console()
UNBATCHED = dataclasses.replace(RANKER_INT8, name="ranker_int8_nobatch", dynamic_batching=None)


def build_repository(target: Path) -> Path:
    """The committed INT8 ranker and its twin without dynamic batching, same ONNX file."""
    source = model_repository() / RANKER_INT8.name
    if not (source / "1" / RANKER_INT8.artifact).is_file():
        raise SystemExit("ranker_int8 is not exported; run `marquee export ranker` first")
    shutil.copytree(source, target / RANKER_INT8.name)
    render.write([UNBATCHED], target)
    shutil.copytree(source / "1", target / UNBATCHED.name / "1")
    return target


def sweep(analyzer, url: str, model: str, batch: int, concurrency: str) -> list[dict]:
    rows = analyzer.measure(model, url, batch_size=batch, concurrency=concurrency, extra=ZERO_DATA)
    return [
        {
            "concurrency": r.concurrency,
            "rows_per_s": r.perf_throughput,
            "p99_ms": r.perf_latency_p99 / 1000,
            "queue_ms": r.perf_server_queue_us / 1000,
            "compute_ms": r.server_compute_us / 1000,
        }
        for r in rows
    ]


def best_under(rows: list[dict], p99_ms: float) -> dict | None:
    within = [r for r in rows if r["p99_ms"] <= p99_ms]
    return max(within, key=lambda r: r["rows_per_s"]) if within else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--p99-ms", type=float, default=4.0, help="latency target for 'equal p99'")
    parser.add_argument("--concurrency", default="1:16:3")
    parser.add_argument("--efficiency-batch", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("perf/reports/side_by_side.json"))
    args = parser.parse_args()
    analyzer = locate()
    with tempfile.TemporaryDirectory() as tmp:
        repository = build_repository(Path(tmp) / "repository")
        onnx_path = repository / RANKER_INT8.name / "1" / RANKER_INT8.artifact
        with TritonServer(repository, free_ports()) as server, console.status("measuring ..."):
            batching = {
                name: sweep(analyzer, server.grpc_url, name, 1, args.concurrency)
                for name in (RANKER_INT8.name, UNBATCHED.name)
            }
            served = sweep(analyzer, server.grpc_url, RANKER_INT8.name, args.efficiency_batch, "1:2")
        reference = reference_speed(onnx_path, args.efficiency_batch)
        in_process_rows_per_s = reference.rows_per_s
    best = {name: best_under(rows, args.p99_ms) for name, rows in batching.items()}
    report = {
        "benchmark": "side_by_side",
        "machine": machine_info(),
        "dynamic_batching": {"p99_target_ms": args.p99_ms, "sweeps": batching, "best_under_target": best},
        "efficiency": {
            "batch_size": args.efficiency_batch,
            "in_process_rows_per_s": in_process_rows_per_s,
            "served": served,
            "ratio": [r["rows_per_s"] / in_process_rows_per_s for r in served],
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    table = Table(title=f"INT8 ranker, one-row requests, best throughput with p99 <= {args.p99_ms} ms")
    for column in ("config", "rows/s", "at concurrency", "p99 ms"):
        table.add_column(column, justify="right")
    for name, row in best.items():
        label = "dynamic batching" if name == RANKER_INT8.name else "no batching"
        table.add_row(
            label,
            *(
                ("-", "-", "-")
                if row is None
                else (f"{row['rows_per_s']:,.0f}", f"{row['concurrency']:.0f}", f"{row['p99_ms']:.2f}")
            ),
        )
    console.print(table)
    for row, ratio in zip(served, report["efficiency"]["ratio"], strict=True):
        console.print(
            f"efficiency at batch {args.efficiency_batch}, c={row['concurrency']:.0f}: served "
            f"{row['rows_per_s']:,.0f} rows/s / in-process {in_process_rows_per_s:,.0f} = {ratio:.2f}"
        )
    console.print(f"report: {args.out}")


if __name__ == "__main__":
    main()
