"""Benchmark: the `recommend` route at 100k and 1M titles, per concurrency and per stage.

    .venv/bin/python -m perf.bench_recommend [--sizes 100000,1000000] [--concurrency 1,2,4]

For each catalogue size it exports the route (cached), starts the embedded server, and:
- drives `recommend` with perf_analyzer (route p50/p99, throughput, queue/compute split);
- reads Triton's per-model statistics for the same window (where each stage spent time);
- reads the route's own `marquee_recommend_pages_total` counter (how many pages degraded);
- runs a short client pass that reads each page's `stage_ms` (per-stage p50/p99);
- times the exact MatMul+TopK search against the served FAISS IVF index (recall@K from export).
Writes perf/reports/recommend.json. Not a test: it takes several minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import tritonclient.http as httpclient
from rich.console import Console
from rich.table import Table

from clients import AsyncRecommendClient
from marquee import render
from marquee.paths import cache_dir, model_repository
from marquee.server import TritonServer, free_ports
from marquee.serving import exported_models, warm_up_recommend
from marquee.specs.ranker import RANKER_BY_PRECISION
from marquee.specs.recommend import BUDGETS, RECOMMEND, RECOMMEND_MODELS, SETTINGS, STAGES
from perf.inputs import recommend_samples, write_recommend_input
from perf.machine import machine_info
from perf.perf_analyzer import locate
from perf.plots import plot_recommend

console = Console()
STAGE_MODELS = ("recommend", "retrieve", "user_tower", "candidates", RECOMMEND.parameters["ranker_model"])


def prepare_repository(n_items: int) -> Path:
    from export.ranker.pipeline import export_ranker
    from export.recommend.pipeline import export_recommend

    if n_items == SETTINGS.n_items:
        repository = model_repository()
    else:
        repository = cache_dir() / "repositories" / f"recommend-{n_items}"
        render.write([*RANKER_BY_PRECISION.values(), *RECOMMEND_MODELS], repository)
    with console.status(f"exporting ranker and route for {n_items:,} titles (cached) ..."):
        export_ranker(repository, tuple(RANKER_BY_PRECISION))
        export_recommend(repository, n_items=n_items)
    return repository


def pages_counter(metrics_url: str) -> dict[str, float]:
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    counts = {"true": 0.0, "false": 0.0}
    for match in re.finditer(r"marquee_recommend_pages_total\{([^}]*)\} ([0-9.e+]+)", text):
        labels, value = match.groups()
        if 'route="recommend"' in labels:
            counts["true" if 'degraded="true"' in labels else "false"] += float(value)
    return counts


def model_statistics(http_url: str) -> dict[str, dict]:
    client = httpclient.InferenceServerClient(http_url)
    stats = {}
    for model in STAGE_MODELS:
        entry = client.get_inference_statistics(model)["model_stats"][0]
        inference = entry["inference_stats"]
        stats[model] = {
            "requests": int(inference["success"]["count"]),
            "executions": int(entry.get("execution_count", 0)),
            **{
                f"{k}_ns": int(inference[k]["ns"])
                for k in ("queue", "compute_input", "compute_infer", "compute_output")
            },
        }
    client.close()
    return stats


def stats_delta(before: dict, after: dict) -> dict[str, dict]:
    out = {}
    for model, end in after.items():
        start = before[model]
        requests = max(end["requests"] - start["requests"], 1)
        executions = max(end["executions"] - start["executions"], 1)
        out[model] = {
            "requests": end["requests"] - start["requests"],
            "avg_batch": round(requests / executions, 2),
            "queue_ms_per_request": (end["queue_ns"] - start["queue_ns"]) / requests / 1e6,
            "compute_ms_per_execution": sum(
                end[k] - start[k] for k in ("compute_input_ns", "compute_infer_ns", "compute_output_ns")
            )
            / executions
            / 1e6,
        }
    return out


async def stage_pass(grpc_url: str, samples: list[dict], concurrency: int) -> dict:
    stage_ms, degraded = [], 0
    queue = list(samples)
    async with AsyncRecommendClient(grpc_url, timeout_s=10.0) as client:

        async def worker():
            nonlocal degraded
            while queue:
                s = queue.pop()
                page = await client.recommend(s["user_id"], s["region"], s["history"], s["n"], *s["context"])
                stage_ms.append([page.stage_ms[name] for name in STAGES])
                degraded += page.degraded

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    values = np.array(stage_ms)
    return {
        "pages": len(values),
        "degraded": degraded,
        "p50_ms": dict(zip(STAGES, np.percentile(values, 50, axis=0).round(3).tolist(), strict=True)),
        "p99_ms": dict(zip(STAGES, np.percentile(values, 99, axis=0).round(3).tolist(), strict=True)),
    }


def measure(repository: Path, samples: list[dict], concurrencies: list[int], interval_ms: int) -> list[dict]:
    analyzer = locate()
    rows = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        TritonServer(repository, free_ports(), models=exported_models(repository)[0]) as server,
    ):
        warm_up_recommend(server.grpc_url)
        input_file = write_recommend_input(samples, Path(tmp) / "input.json")
        for concurrency in concurrencies:
            stats_before, pages_before = model_statistics(server.http_url), pages_counter(server.metrics_url)
            (route,) = analyzer.measure(
                "recommend",
                server.grpc_url,
                concurrency=str(concurrency),
                interval_ms=interval_ms,
                max_trials=20,
                extra=("--input-data", str(input_file)),
            )
            stats_after, pages_after = model_statistics(server.http_url), pages_counter(server.metrics_url)
            served = {k: pages_after[k] - pages_before[k] for k in pages_after}
            rows.append(
                {
                    "concurrency": concurrency,
                    "perf_throughput": route.perf_throughput,
                    "perf_latency_p50_ms": route.perf_latency_p50 / 1000,
                    "perf_latency_p99_ms": route.perf_latency_p99 / 1000,
                    "perf_server_queue_ms": route.perf_server_queue_us / 1000,
                    "perf_server_compute_ms": route.server_compute_us / 1000,
                    "degraded_fraction": served["true"] / max(served["true"] + served["false"], 1),
                    "models": stats_delta(stats_before, stats_after),
                    "stages": asyncio.run(stage_pass(server.grpc_url, samples[:200], concurrency)),
                }
            )
    return rows


def search_cost(repository: Path, queries: int = 200) -> dict:
    """Exact ONNX search vs the served FAISS index (nprobe as tuned at export), 1 thread each,
    plus the recall@K that export measured for that nprobe."""
    import faiss
    import onnxruntime as ort

    ivf_dir = repository / "candidates_ivf" / "1"
    tuned = json.loads((ivf_dir / "ivf.json").read_text())
    index = faiss.read_index(str(ivf_dir / "index.faiss"))
    index.nprobe = tuned["nprobe"]
    faiss.omp_set_num_threads(1)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    exact = ort.InferenceSession(str(repository / "candidates" / "1" / "model.onnx"), options)
    users = np.random.default_rng(0).standard_normal((queries, SETTINGS.embedding_dim)).astype(np.float32)
    users /= np.linalg.norm(users, axis=1, keepdims=True)
    start = time.perf_counter()
    for row in users:
        exact.run(None, {"user_embedding": row[None]})
    exact_ms = (time.perf_counter() - start) / queries * 1000
    augmented = np.hstack([users, np.ones((queries, 1), np.float32)])
    start = time.perf_counter()
    for row in augmented:
        index.search(row[None], SETTINGS.top_k)
    ivf_ms = (time.perf_counter() - start) / queries * 1000
    return {
        "index": f"IVFFlat nlist={index.nlist} nprobe={index.nprobe}",
        "recall_at_k_vs_exact": tuned[f"recall_at_{SETTINGS.top_k}"],
        "exact_onnx_ms_per_query": exact_ms,
        "ivf_ms_per_query": ivf_ms,
    }


def summary_table(report: dict) -> Table:
    table = Table(title="recommend route (perf_analyzer, gRPC)")
    for column in (
        "titles",
        "concurrency",
        "pages/s",
        "p50 ms",
        "p99 ms",
        "degraded",
        "stage p99 ms (retrieve/filter/rank/rules)",
    ):
        table.add_column(column, justify="right")
    for size, result in report["sizes"].items():
        for row in result["route"]:
            stages = row["stages"]["p99_ms"]
            table.add_row(
                f"{int(size):,}",
                str(row["concurrency"]),
                f"{row['perf_throughput']:.0f}",
                f"{row['perf_latency_p50_ms']:.1f}",
                f"{row['perf_latency_p99_ms']:.1f}",
                f"{row['degraded_fraction']:.1%}",
                " / ".join(f"{stages[s]:.1f}" for s in STAGES[:4]),
            )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--concurrency", default="1,2,4")
    parser.add_argument("--interval-ms", type=int, default=5000, help="perf_analyzer measurement window")
    parser.add_argument("--out", type=Path, default=Path("perf/reports/recommend.json"))
    args = parser.parse_args()
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    report = {"benchmark": "recommend", "machine": machine_info(), "budget_ms": BUDGETS.__dict__, "sizes": {}}
    for n_items in (int(s) for s in args.sizes.split(",")):
        repository = prepare_repository(n_items)
        samples = recommend_samples(n_items)
        with console.status(f"measuring {n_items:,} titles ..."):
            route = measure(repository, samples, concurrencies, args.interval_ms)
        report["sizes"][str(n_items)] = {"route": route, "candidate_search": search_cost(repository)}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")  # keep what is measured so far
    console.print(summary_table(report))
    plot = plot_recommend(report, args.out.with_suffix(".png"))
    console.print(f"plot: {plot}" if plot else "no plot: matplotlib is not installed (pip install -e .[perf])")
    for size, result in report["sizes"].items():
        console.print(f"{int(size):,} titles, candidate search: {result['candidate_search']}")
    console.print(
        f"report: {args.out} ({report['machine']['cpu']}, {report['machine']['cores']} cores, "
        f"{report['machine']['date']})"
    )


if __name__ == "__main__":
    main()
