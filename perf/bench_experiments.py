"""Benchmark: what shadow scoring costs `recommend`'s p99, and the A/B readout, in one run.

    .venv/bin/python -m perf.bench_experiments [--pages 1500] [--rounds 2] [--users 2000]

Exports a 20k-title route and two ranker versions (cached by content hash), starts the
embedded server in explicit model-control mode, then:
1. drives `recommend` at concurrency 4 in alternating rounds with shadow scoring off and
   on (version 2 scoring every ranked page in shadow, 2 in flight per instance), and
   reports client-side p50/p99 and throughput per condition, with the shadow's scored and
   dropped counts, so the two conditions share one server, one host state and one run;
2. starts an A/B test (version 2 to half the users) and runs the A/B readout: simulated
   users click on the served pages with the synthetic world's true click probabilities.
Writes perf/reports/experiments.json (+ .png) and perf/reports/ab_readout.json. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import re
import time
import urllib.request
from pathlib import Path

import numpy as np
from rich.console import Console

from clients import AsyncRecommendClient, RecommendClient
from export.ranker.model import RankerArchitecture
from export.ranker.train import TrainingConfig
from export.recommend.two_tower import TwoTowerConfig
from marquee import render
from marquee.paths import cache_dir
from marquee.rollout import commands
from marquee.rollout.control import ModelControl
from marquee.rollout.files import RouteFiles
from marquee.routes.recommend.experiment import p99
from marquee.server import TritonServer, free_ports
from marquee.serving import warm_up_recommend
from marquee.specs.ranker import RANKER_FP32
from marquee.specs.recommend import RECOMMEND, RECOMMEND_MODELS
from perf.machine import machine_info

console = Console()
REPORTS = Path(__file__).resolve().parent / "reports"
PLOT = REPORTS / "experiments.png"
N_ITEMS = 20_000
CONCURRENCY = 4
ARCH = RankerArchitecture(embedding_dim=8, cross_layers=2, deep_layers=(64, 32))
# Version 1 serves; version 2 is a retrain on twice the log (the candidate).
SERVING = TrainingConfig(train_rows=100_000, holdout_rows=20_000, epochs=1, arch=ARCH)
CANDIDATE = dataclasses.replace(SERVING, train_rows=200_000, seed=1)
# FP32: the INT8 export's tolerance is tuned to the project's default training run.
RANKER = RANKER_FP32
ROUTE = RECOMMEND.name
# The benchmark measures; it must not roll back (a loaded 2-core host degrades many pages).
NO_GUARDRAIL_TRIPS = {"p99_ms": 60_000.0, "max_degraded_rate": 1.0}
# Shadow conditions: off, every ranked page, and a 10% sample of pages.
CONDITIONS = {"off": None, "on": 1.0, "sampled_10pct": 0.1}


def prepare_repository() -> Path:
    from export.ranker.pipeline import default_checkpoint, export_ranker
    from export.recommend.pipeline import export_recommend

    repository = cache_dir() / "repositories" / "experiments"
    route = dataclasses.replace(RECOMMEND, parameters={**RECOMMEND.parameters, "ranker_model": RANKER.name})
    render.write([RANKER, *[m for m in RECOMMEND_MODELS if m.name != ROUTE], route], repository)
    with console.status("exporting route and ranker versions 1 and 2 (cached) ..."):
        export_ranker(repository, (RANKER.precision,), checkpoint=default_checkpoint(SERVING), version=1)
        export_ranker(repository, (RANKER.precision,), checkpoint=default_checkpoint(CANDIDATE), version=2)
        export_recommend(repository, config=TwoTowerConfig(n_items=N_ITEMS, log_rows=150_000, epochs=1))
    return repository


def shadow_counts(metrics_url: str) -> dict[str, float]:
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    counts = {"scored": 0.0, "dropped": 0.0, "failed": 0.0}
    for outcome, value in re.findall(r'marquee_shadow_pages_total\{[^}]*outcome="(\w+)"[^}]*\} ([0-9.e+]+)', text):
        counts[outcome] = counts.get(outcome, 0.0) + float(value)
    return counts


async def drive(grpc_url: str, pages: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 10_000, pages)
    latencies, degraded = [], 0
    queue = list(users)

    async with AsyncRecommendClient(grpc_url, timeout_s=10.0) as client:

        async def worker():
            nonlocal degraded
            while queue:
                user = int(queue.pop())
                started = time.perf_counter()
                page = await client.recommend(user, user % 8, (), 20, user % 4, user % 24)
                latencies.append(time.perf_counter() - started)
                degraded += page.degraded

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        wall = time.perf_counter() - started
    return {"latencies": latencies, "degraded": degraded, "wall_s": wall}


def summarise(runs: list[dict]) -> dict:
    latencies = np.concatenate([run["latencies"] for run in runs])
    return {
        "pages": len(latencies),
        "p50_ms": float(np.percentile(latencies, 50) * 1000),
        "p99_ms": p99(latencies) * 1000,
        "pages_per_s": len(latencies) / sum(run["wall_s"] for run in runs),
        "degraded_pages": int(sum(run["degraded"] for run in runs)),
    }


def shadow_cost(server, files, control, pages: int, rounds: int) -> dict:
    runs = {condition: [] for condition in CONDITIONS}
    counts = {condition: {"scored": 0.0, "dropped": 0.0, "failed": 0.0} for condition in CONDITIONS}
    for round_index in range(rounds):
        for condition, share in CONDITIONS.items():
            if share is not None:
                commands.start(files, control, None, 0.0, "bench", shadow=2, guardrails=NO_GUARDRAIL_TRIPS)
                _set_shadow_share(files, share)
            time.sleep(1.0)
            before = shadow_counts(server.metrics_url)
            runs[condition].append(asyncio.run(drive(server.grpc_url, pages, seed=round_index)))
            time.sleep(0.5)
            after = shadow_counts(server.metrics_url)
            counts[condition] = {k: counts[condition][k] + after[k] - before[k] for k in after}
            if share is not None:
                commands.rollback(files, control, "benchmark: shadow off", settle_s=1.0)
            console.print(f"round {round_index + 1} shadow {condition}: {summarise(runs[condition][-1:])}")
    summary = {condition: {**summarise(runs[condition]), "shadow_pages": counts[condition]} for condition in CONDITIONS}
    off = summary["off"]
    return {
        "concurrency": CONCURRENCY,
        "pages_per_round": pages,
        "rounds": rounds,
        "conditions": {name: {"shadow_share": share} | summary[name] for name, share in CONDITIONS.items()},
        "p99_ratio_over_off": {name: summary[name]["p99_ms"] / off["p99_ms"] for name in CONDITIONS},
        "p50_ratio_over_off": {name: summary[name]["p50_ms"] / off["p50_ms"] for name in CONDITIONS},
    }


def _set_shadow_share(files: RouteFiles, share: float) -> None:
    from marquee.rollout.files import experiment_fields

    fields = experiment_fields(files.read())
    fields["shadow_share"] = share
    files.write(fields, "start", f"benchmark: shadow share {share}")


def ab_readout(server, files, control, users: int, seed: int) -> dict:
    from export.recommend.catalogue import build_catalogue, user_histories
    from marquee.rollout.ab_readout import client_page_source, draw_visits, readout

    experiment = commands.start(files, control, 2, 0.5, f"bench-ab-{seed}", guardrails=NO_GUARDRAIL_TRIPS)
    time.sleep(1.0)
    catalogue = build_catalogue(N_ITEMS)
    visits = draw_visits(catalogue, user_histories(catalogue), users, seed)
    with RecommendClient(server.grpc_url, timeout_s=10.0) as client:
        report = readout(catalogue, visits, client_page_source(client), page_size=10, seed=seed)
    commands.rollback(files, control, "benchmark: A/B readout done", settle_s=1.0)
    return {"experiment": {"name": experiment.name, "control": 1, "treatment": 2, "share": 0.5}, **report}


def plot(report: dict, readout_report: dict, path: Path) -> Path | None:
    """Left: shadow scoring's latency cost. Right: the A/B readout, each cohort's CTR with
    its interval and the measured lift's interval against the true lift."""
    from perf.plots import _caption, pyplot, save

    plt = pyplot()
    if plt is None:
        return None
    figure, (cost_axis, ctr_axis, lift_axis) = plt.subplots(1, 3, figsize=(14, 4.2))
    _plot_shadow_cost(cost_axis, report["shadow_cost"]["conditions"])
    _plot_readout(ctr_axis, lift_axis, readout_report)
    return save(figure, path, f"ranker experiments: {_caption(report)}")


def _plot_shadow_cost(axis, cost: dict) -> None:
    labels = ["p50", "p99"]
    x = np.arange(len(labels))
    colours = {"off": "#4c72b0", "on": "#dd8452", "sampled_10pct": "#55a868"}
    names = {"off": "shadow off", "on": "shadow on (every ranked page)", "sampled_10pct": "shadow on 10% of pages"}
    width = 0.8 / len(cost)
    for k, (condition, row) in enumerate(cost.items()):
        offset = (k - (len(cost) - 1) / 2) * width
        values = [row["p50_ms"], row["p99_ms"]]
        axis.bar(x + offset, values, width, label=names.get(condition, condition), color=colours.get(condition))
    axis.set_xticks(x, labels)
    axis.set(ylabel="client latency (ms)", title=f"recommend at concurrency {CONCURRENCY}: shadow scoring's cost")
    axis.legend(fontsize=8)


def _plot_readout(ctr_axis, lift_axis, readout_report: dict) -> None:
    cohorts, lift = readout_report["cohorts"], readout_report["lift"]
    rows = [(name, c["ctr"], c["ctr_ci95"], c["true_ctr"]) for name, c in cohorts.items()]
    _intervals(ctr_axis, rows, "CTR per cohort")
    lift_row = ("treatment - control", lift["measured"], [lift["ci95_low"], lift["ci95_high"]], lift["true"])
    _intervals(lift_axis, [lift_row], f"lift: {readout_report['users']} users, seed {readout_report['seed']}")
    lift_axis.axvline(0.0, color="grey", linewidth=0.6)
    lift_axis.legend(fontsize=8, loc="upper left")


def _intervals(axis, rows: list, title: str) -> None:
    """One row each: the measured value with its 95% interval, and the true value."""
    for y, (_, measured, (low, high), true) in enumerate(rows):
        axis.errorbar(measured, y, xerr=[[measured - low], [high - measured]], fmt="o", color="#4c72b0", capsize=4)
        axis.plot(true, y, "x", color="#c44e52", markersize=9)
    axis.set_yticks(range(len(rows)), [row[0] for row in rows])
    axis.set_ylim(-0.6, len(rows) - 0.4)
    axis.plot([], [], "o", color="#4c72b0", label="measured, 95% interval")
    axis.plot([], [], "x", color="#c44e52", label="true (known click probabilities)")
    axis.set(title=title)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1500, help="pages per round and condition")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--users", type=int, default=2000, help="simulated users in the A/B readout")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--plot-only", action="store_true", help="redraw the plot from the saved reports")
    args = parser.parse_args()
    if args.plot_only:
        saved = json.loads((REPORTS / "experiments.json").read_text())
        console.print(f"wrote {plot(saved, json.loads((REPORTS / 'ab_readout.json').read_text()), PLOT)}")
        return
    repository = prepare_repository()
    with TritonServer(repository, free_ports(), models=[ROUTE, "retrieve_ivf", RANKER.name]) as server:
        warm_up_recommend(server.grpc_url, pages=40)
        files, control = RouteFiles(repository, ROUTE), ModelControl(server.http_url, server.admin_key)
        files.write({"name": "baseline", "control": 1, "salt": "baseline"}, "reset", "benchmark start")
        cost = shadow_cost(server, files, control, args.pages, args.rounds)
        readout_report = ab_readout(server, files, control, args.users, args.seed)
    machine = machine_info()
    setup = {
        "catalogue_items": N_ITEMS,
        "ranker": RANKER.name,
        "version_1": SERVING.to_dict(),
        "version_2": CANDIDATE.to_dict(),
    }
    report = {"machine": machine, "setup": setup, "shadow_cost": cost}
    REPORTS.mkdir(exist_ok=True)
    (REPORTS / "experiments.json").write_text(json.dumps(report, indent=2) + "\n")
    readout_report = {"machine": machine, "setup": setup, **readout_report}
    (REPORTS / "ab_readout.json").write_text(json.dumps(readout_report, indent=2) + "\n")
    plotted = plot(report, readout_report, PLOT)
    console.print_json(json.dumps({"shadow_cost": cost, "lift": readout_report["lift"]}))
    console.print(
        f"wrote {REPORTS / 'experiments.json'}, {REPORTS / 'ab_readout.json'}" + (f", {plotted}" if plotted else "")
    )


if __name__ == "__main__":
    main()
