"""Benchmark: a live-event surge on `recommend` while batch jobs run, before and after
tuning the server with Triton's own tools.

    .venv/bin/python -m perf.bench_surge [--viewers 6] [--seconds 30]

Three runs of the same locust load (perf/load/scenarios.py), each on a fresh server:
1. quiet: surge viewers only;
2. background: surge viewers + the batch jobs (catalogue rescoring on the route's own
   INT8 ranker, Whisper transcription of an archive, the moderation backlog), default
   configs;
3. background, tuned: the same load, with
   - priority levels on `ranker_int8`: the route's calls keep the default level 1, batch
     jobs send priority 2, so a page's ranking never waits behind a 1024-row batch;
   - instance placement: the rescoring job moves to `ranker_int8_batch`, a deployment
     of the same ONNX file with instances of its own, so a 1024-row batch never holds
     the instance a page is waiting for;
   - the rate limiter (`--rate-limit=execution_count`): every batch-only model needs the
     one `batch_cores` resource, so at most one batch execution runs at a time and a
     core stays free for interactive work;
   - a queue policy on the batch models: a bounded queue, so a backlog waits in the
     client (or the durable moderation queue) instead of inside Triton.
Records recommend's p50/p99 twice: client side (locust, which shares the 2 cores and
adds its own stalls) and server side (Triton's latency summaries,
`--metrics-config=summary_latencies=true`); the share of degraded pages from the route's
metric; and each batch job's throughput (what the tuning costs them).
Writes perf/reports/surge.json and surge.png. Not a test: it takes several minutes.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from marquee import render
from marquee.paths import model_repository
from marquee.server import TritonServer, free_ports
from marquee.serving import exported_models, warm_up_recommend
from marquee.specs import ModelSpec, QueuePolicy, RateLimiter
from marquee.specs.moderation_text import PROFANITY_LEXICAL, TEXT_CLASSIFIER_INT8
from marquee.specs.ranker import RANKER_INT8
from marquee.specs.whisper import WHISPER_ENCODER_INT8
from perf.bench_recommend import pages_counter
from perf.machine import machine_info
from perf.rounds import run_alternating

console = Console()
ROUTE_MODELS = ("ranker_int8", "user_tower", "candidates_ivf", "retrieve_ivf", "recommend")
BACKGROUND_MODELS = (
    "profanity_lexical",
    "text_classifier_int8",
    "moderate_text",
    "audio_features",
    "whisper_encoder_int8",
    "whisper_decoder_int8",
    "transcribe_int8",
)
BATCH_USERS = ("CatalogueRescoringJob", "TranscriptionBatchJob", "ModerationBatchJob")
BATCH_RESOURCE = "batch_cores"
BATCH_PRIORITY = 2  # the low level of ranker_int8's two priority levels
BATCH_RANKER = "ranker_int8_batch"  # the rescoring job's own deployment when tuned
SUMMARY_LATENCIES = "--metrics-config=summary_latencies=true"


@dataclasses.dataclass(frozen=True)
class Condition:
    name: str
    background: bool
    tuned: bool
    rate_limit: bool = False  # only with tuned


CONDITIONS = (
    Condition("quiet", background=False, tuned=False),
    Condition("background", background=True, tuned=False),
    # Priority levels, placement and queue policy, without the rate limiter; then all.
    Condition("background_priority", background=True, tuned=True),
    Condition("background_tuned", background=True, tuned=True, rate_limit=True),
)


def _batch_only(spec: ModelSpec) -> ModelSpec:
    """One instance that must hold the batch resource, with a bounded queue."""
    limited = tuple(
        dataclasses.replace(group, rate_limiter=RateLimiter(((BATCH_RESOURCE, 1),), priority=2))
        for group in spec.instance_groups
    )
    batching = spec.dynamic_batching
    if batching is not None:
        batching = dataclasses.replace(batching, default_queue_policy=QueuePolicy(max_queue_size=4))
    return dataclasses.replace(spec, instance_groups=limited, dynamic_batching=batching)


def tuned_specs() -> list[ModelSpec]:
    # The route's own BLS calls carry no priority, so they get the default (urgent) level.
    ranker = dataclasses.replace(
        RANKER_INT8,
        dynamic_batching=dataclasses.replace(RANKER_INT8.dynamic_batching, priority_levels=2, default_priority_level=1),
    )
    # Only leaf models are rate limited: a BLS route holding the resource while waiting
    # for a child that needs it would deadlock.
    batch_ranker = dataclasses.replace(RANKER_INT8, name=BATCH_RANKER)
    # The transcribe route's decoder runs inside its own Python process (see
    # marquee/specs/whisper.py), so only its encoder is a Triton execution to limit.
    batch_models = (batch_ranker, WHISPER_ENCODER_INT8, PROFANITY_LEXICAL, TEXT_CLASSIFIER_INT8)
    return [ranker, *(_batch_only(spec) for spec in batch_models)]


def variant_repository(base: Path, target: Path, overrides: list[ModelSpec]) -> Path:
    """`base` with some configs re-rendered; version directories are symlinked, not copied."""
    for model_dir in sorted(p for p in base.iterdir() if (p / "config.pbtxt").is_file()):
        (target / model_dir.name).mkdir(parents=True)
        shutil.copy2(model_dir / "config.pbtxt", target / model_dir.name / "config.pbtxt")
        for version in (p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()):
            (target / model_dir.name / version.name).symlink_to(version.resolve(), target_is_directory=True)
    render.write(overrides, target)
    for spec in overrides:  # a new deployment of an existing model shares its files
        source = base / spec.name
        if not source.is_dir():
            twin = next(name for name in os.listdir(base) if spec.name.startswith(name + "_"))
            (target / spec.name / "1").symlink_to((base / twin / "1").resolve(), target_is_directory=True)
    return target


def run_locust(
    grpc_url: str, users: list[str], viewers: int, seconds: int, csv_prefix: Path, env: dict, fixed: int | None = None
) -> dict:
    """`fixed`: how many users have a fixed count (default: one per user class but the viewers)."""
    if fixed is None:
        fixed = sum(1 for u in users if u != "HomePageViewer")
    command = [
        sys.executable, "-m", "locust", "-f", "perf/load/scenarios.py", "--host", grpc_url, "--headless",
        "-u", str(viewers + fixed), "-r", str(viewers + fixed), "-t", f"{seconds}s",
        "--csv", str(csv_prefix), "--only-summary", "--stop-timeout", "5", *users,
    ]  # fmt: skip
    env = {**os.environ, **env}
    try:
        subprocess.run(command, env=env, timeout=seconds + 60, check=False, capture_output=True)
    except subprocess.TimeoutExpired:
        pass  # locust sometimes lingers after writing its CSV; the figures are already there
    stats_file = Path(f"{csv_prefix}_stats.csv")
    if not stats_file.is_file():
        raise RuntimeError(f"locust wrote no statistics ({stats_file}); command: {' '.join(command)}")
    with stats_file.open() as f:
        return {row["Name"]: _row(row) for row in csv.DictReader(f) if row["Name"] != "Aggregated"}


def _row(row: dict) -> dict:
    return {
        "requests": int(row["Request Count"]),
        "failures": int(row["Failure Count"]),
        "requests_per_s": float(row["Requests/s"]),
        "p50_ms": float(row["50%"]),
        "p99_ms": float(row["99%"]),
    }


def measure(condition: Condition, base: Path, viewers: int, seconds: int, workdir: Path) -> dict:
    overrides = tuned_specs() if condition.tuned else []
    repository = variant_repository(base, workdir / condition.name / "repository", overrides)
    ready, _ = exported_models(repository)
    background = BACKGROUND_MODELS + ((BATCH_RANKER,) if condition.tuned else ())
    models = [m for m in ROUTE_MODELS + (background if condition.background else ()) if m in ready]
    extra = (SUMMARY_LATENCIES,)
    if condition.rate_limit:
        extra += ("--rate-limit=execution_count", f"--rate-limit-resource={BATCH_RESOURCE}:1")
    env = {"MARQUEE_BATCH_PRIORITY": str(BATCH_PRIORITY if condition.tuned else 0)}
    if condition.tuned:
        env["MARQUEE_RESCORING_MODEL"] = BATCH_RANKER
    users = ["HomePageViewer", *(BATCH_USERS if condition.background else ())]
    with TritonServer(repository, free_ports(), models=models, extra_args=extra) as server:
        warm_up_recommend(server.grpc_url, pages=40)
        before = pages_counter(server.metrics_url)
        started = time.time()
        stats = run_locust(server.grpc_url, users, viewers, seconds, workdir / condition.name / "locust", env)
        after = pages_counter(server.metrics_url)
        server_side = server_latency(server.metrics_url, "recommend")
    pages = {k: after[k] - before[k] for k in after}
    total = sum(pages.values())
    return {
        "condition": dataclasses.asdict(condition),
        "models": models,
        "server_args": list(extra),
        "config_overrides": {spec.name: render.config_dict(spec) for spec in overrides},
        "wall_s": round(time.time() - started, 1),
        "locust": stats,
        "recommend_pages": pages,
        "degraded_share": pages["true"] / total if total else None,
        "server_side": server_side,
    }


def server_latency(metrics_url: str, model: str) -> dict:
    """Request latency inside Triton (queue + compute), in ms: p50/p99 from its latency
    summaries (None when Triton reports NaN for a quantile) and the mean over the run."""
    import re
    import urllib.request

    url = metrics_url if metrics_url.startswith("http") else f"http://{metrics_url}/metrics"
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    labels = rf'model="{model}",version="\d+"'
    quantiles = {}
    for q, v in re.findall(rf'nv_inference_request_summary_us{{{labels},quantile="([0-9.]+)"}} (\S+)', text):
        value = float(v)
        quantiles[float(q)] = None if value != value else value / 1000  # NaN -> None
    total = re.search(rf"nv_inference_request_summary_us_sum{{{labels}}} (\S+)", text)
    count = re.search(rf"nv_inference_request_summary_us_count{{{labels}}} (\S+)", text)
    mean = float(total.group(1)) / float(count.group(1)) / 1000 if total and count and float(count.group(1)) else None
    return {"p50_ms": quantiles.get(0.5), "p99_ms": quantiles.get(0.99), "mean_ms": mean}


def combine(results: list[dict]) -> dict:
    """Median over rounds of each figure (the rounds themselves are kept in `rounds`)."""
    import statistics

    names = {name for result in results for name in result["locust"]}
    locust = {
        name: {
            key: statistics.median(r["locust"][name][key] for r in results if name in r["locust"])
            for key in ("requests", "failures", "requests_per_s", "p50_ms", "p99_ms")
        }
        for name in names
    }
    shares = [r["degraded_share"] for r in results if r["degraded_share"] is not None]
    server_side = {
        key: statistics.median(values)
        for key in ("p50_ms", "p99_ms", "mean_ms")
        if (values := [r["server_side"][key] for r in results if r["server_side"].get(key) is not None])
    }
    return {
        **{k: results[0][k] for k in ("condition", "models", "server_args", "config_overrides")},
        "locust": locust,
        "degraded_share": statistics.median(shares) if shares else None,
        "server_side": server_side,
        "rounds": [
            {k: r[k] for k in ("wall_s", "locust", "recommend_pages", "degraded_share", "server_side")} for r in results
        ],
    }


def summary_table(report: dict) -> Table:
    table = Table(title=f"recommend during a surge ({report['viewers']} viewers x 4 pages/s)")
    for column in ("condition", "pages/s", "p50 ms", "p99 ms", "server mean ms", "degraded", "failures", "batch req/s"):
        table.add_column(column, justify="right")
    for name, result in report["conditions"].items():
        page = result["locust"].get("recommend", {})
        batch = ", ".join(
            f"{label.split(':')[1].split()[0][:5]} {row['requests_per_s']:.0f}"
            for label, row in result["locust"].items()
            if label.startswith("batch:")
        )
        table.add_row(
            name,
            f"{page.get('requests_per_s', 0):.1f}",
            f"{page.get('p50_ms', 0):.0f}",
            f"{page.get('p99_ms', 0):.0f}",
            f"{result['server_side'].get('mean_ms', float('nan')):.1f}",
            f"{result['degraded_share']:.1%}" if result["degraded_share"] is not None else "-",
            str(page.get("failures", 0)),
            batch or "-",
        )
    return table


def plot(report: dict, path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names = list(report["conditions"])
    results = [report["conditions"][n] for n in names]
    bars = {
        "client p50 (locust)": [r["locust"]["recommend"]["p50_ms"] for r in results],
        "client p99 (locust)": [r["locust"]["recommend"]["p99_ms"] for r in results],
        "server mean (Triton)": [r["server_side"].get("mean_ms") or 0 for r in results],
    }
    degraded = [100 * (r["degraded_share"] or 0) for r in results]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    xs = range(len(names))
    width = 0.8 / len(bars)
    for i, (label, values) in enumerate(bars.items()):
        left.bar([x + (i - 1) * width for x in xs], values, width, label=label)
    left.set_xticks(list(xs), [n.replace("_", "\n") for n in names])
    left.set_ylabel("recommend latency (ms)")
    left.legend()
    right.bar(list(xs), degraded, 0.5, color="tab:red")
    right.set_xticks(list(xs), [n.replace("_", "\n") for n in names])
    right.set_ylabel("degraded pages (%)")
    machine = report["machine"]
    fig.suptitle(
        f"Live-event surge, {report['viewers']} viewers: {machine['cpu']}, {machine['cores']} cores, "
        f"{machine['date'][:10]}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def add_load_arguments(parser: argparse.ArgumentParser, out: str) -> None:
    """The options the surge and isolation benchmarks share."""
    parser.add_argument("--viewers", type=int, default=6, help="home-page viewers, 4 pages/s each")
    parser.add_argument("--seconds", type=int, default=30, help="locust run per condition and round")
    parser.add_argument("--rounds", type=int, default=2, help="each condition runs once per round")
    parser.add_argument("--repository", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path(out))


def route_repository(repository: Path | None) -> Path:
    """The exported repository holding the route; exits saying what to export when not."""
    base = (repository or model_repository()).resolve()
    missing = [m for m in ROUTE_MODELS if m not in exported_models(base)[0]]
    if missing:
        raise SystemExit(f"not exported: {missing}; run `marquee up --no-wait` (or `marquee export ...`) first")
    return base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_load_arguments(parser, "perf/reports/surge.json")
    args = parser.parse_args()
    base = route_repository(args.repository)
    report = {
        "benchmark": "surge",
        "machine": machine_info(),
        "viewers": args.viewers,
        "seconds": args.seconds,
        "rounds": args.rounds,
    }
    run_alternating(
        CONDITIONS,
        args.rounds,
        args.seconds,
        lambda condition, workdir: measure(condition, base, args.viewers, args.seconds, workdir),
        combine,
        report,
        args.out,
        console,
    )
    console.print(summary_table(report))
    image = plot(report, args.out.with_suffix(".png"))
    console.print(f"report: {args.out}" + (f", plot: {image}" if image else " (no plot: matplotlib missing)"))


if __name__ == "__main__":
    main()
