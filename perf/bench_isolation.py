"""Benchmark: does the home surface keep its latency while another surface floods the same
pool and batch jobs run? With and without workload classes and quotas, in one run.

    .venv/bin/python -m perf.bench_isolation [--viewers 6] [--creators 4] [--seconds 30] [--rounds 2]

Conditions (each on a fresh server; the rounds alternate them, so drift on a shared host
lands on all alike):
1. home_alone: the live-event surge on the home surface (HomePageViewer) and nothing else;
   the reference.
2. shared: the same surge, plus CreatorToolsFlood (an internal tool requesting `recommend`
   pages back to back on the creator_tools surface) and the batch jobs of the surge
   benchmark (catalogue rescoring, transcription, moderation backlog). No isolation: every
   quota is off and the configs are the defaults.
3. isolated: the same load with Marquee's isolation on:
   - quotas: `policies/surfaces.yaml` as shipped (creator_tools 50 requests/s), enforced
     by the route (each instance its share) and refused with a wait the tool honours;
   - workload classes: the batch class sends Triton priority 2 on `ranker_int8`'s
     priority levels, the rescoring job runs on its own deployment of the ranker, and the
     batch models have a bounded queue (perf/bench_surge.py's `tuned_specs`, without the
     rate limiter, which cost the surge more than it gave).
4. isolated_host_quota: as 3, with creator_tools' quota sized to this host (10 pages/s
   instead of the shipped 50, which is twice the surge's own load on 2 cores).
Reports, per condition, the home surface's p50/p99 (client side, locust) and p99 from the
route's own histogram (server side), its degraded-page rate, the creator tool's admitted
and refused pages per second, and the batch jobs' throughput.
Writes perf/reports/isolation.json and isolation.png. Not a test: it takes several minutes.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import time
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from marquee.server import TritonServer, free_ports
from marquee.serving import exported_models, warm_up_recommend
from marquee.surfaces import load_surfaces
from marquee.top.rates import Window
from marquee.top.scrape import fetch
from perf.bench_surge import (
    BACKGROUND_MODELS,
    BATCH_RANKER,
    BATCH_USERS,
    ROUTE_MODELS,
    add_load_arguments,
    route_repository,
    run_locust,
    tuned_specs,
    variant_repository,
)
from perf.machine import machine_info
from perf.plots import pyplot, save
from perf.rounds import run_alternating

console = Console()
ROUTE = "recommend"
HOME_LABEL = "recommend"  # HomePageViewer's locust name
CREATOR_LABEL = "creator_tools: recommend"
CREATOR_REFUSED_LABEL = "creator_tools: refused over quota"


@dataclasses.dataclass(frozen=True)
class Condition:
    name: str
    flood: bool  # creator tool and batch jobs running
    isolated: bool  # quotas and workload classes on
    creator_quota_rps: float | None = None  # None: creator_tools' quota as shipped


# The shipped creator_tools quota (50 pages/s) is sized for a production pool; on a 2-core
# host it is twice the surge's own load. The last condition sizes it to this host.
HOST_SIZED_CREATOR_QUOTA = 10.0
CONDITIONS = (
    Condition("home_alone", flood=False, isolated=False),
    Condition("shared", flood=True, isolated=False),
    Condition("isolated", flood=True, isolated=True),
    Condition("isolated_host_quota", flood=True, isolated=True, creator_quota_rps=HOST_SIZED_CREATOR_QUOTA),
)


def set_quotas(surfaces_file: Path, condition: Condition) -> None:
    """The shipped surfaces file, every quota off (`shared`) or creator_tools' resized."""
    raw = yaml.safe_load(surfaces_file.read_text())
    if not condition.isolated:
        for entry in raw["surfaces"].values():
            entry["quota_rps"] = 0
    elif condition.creator_quota_rps is not None:
        raw["surfaces"]["creator_tools"]["quota_rps"] = condition.creator_quota_rps
    else:
        return
    raw["version"] = f"{raw['version']}-{condition.name}"
    surfaces_file.write_text(yaml.safe_dump(raw, sort_keys=False))


def route_with_own_version_folder(repository: Path) -> Path:
    """variant_repository links version folders to the base; the route's surfaces file is
    edited per condition, so its version folder becomes a copy."""
    version = repository / ROUTE / "1"
    source = version.resolve()
    version.unlink()
    shutil.copytree(source, version)
    return version / "surfaces.yaml"


def home_figures(window: Window) -> dict:
    """The home surface's server-side figures over the run, from the route's own series."""
    outcomes = {
        outcome: window.increase("marquee_route_requests_total", route=ROUTE, surface="home", outcome=outcome)
        for outcome in ("ok", "degraded", "error", "refused")
    }
    served = outcomes["ok"] + outcomes["degraded"]
    p99 = window.quantile(0.99, "marquee_route_request_duration_seconds", route=ROUTE, surface="home")
    creator = {
        outcome: window.increase("marquee_route_requests_total", route=ROUTE, surface="creator_tools", outcome=outcome)
        for outcome in ("ok", "degraded", "refused")
    }
    return {
        "home_outcomes": outcomes,
        "home_degraded_share": outcomes["degraded"] / served if served else None,
        "home_server_p99_ms": p99 * 1000 if p99 is not None else None,
        "creator_outcomes": creator,
    }


def measure(condition: Condition, base: Path, args: argparse.Namespace, workdir: Path) -> dict:
    overrides = tuned_specs() if condition.isolated else []
    repository = variant_repository(base, workdir / condition.name / "repository", overrides)
    set_quotas(route_with_own_version_folder(repository), condition)
    ready, _ = exported_models(repository)
    background = BACKGROUND_MODELS + ((BATCH_RANKER,) if condition.isolated else ())
    models = [m for m in ROUTE_MODELS + (background if condition.flood else ()) if m in ready]
    env = {
        # The batch class's Triton priority, from the surfaces file (what its clients send).
        "MARQUEE_BATCH_PRIORITY": str(load_surfaces().get("batch").priority if condition.isolated else 0),
        "MARQUEE_CREATOR_USERS": str(args.creators),
    }
    if condition.isolated:
        env["MARQUEE_RESCORING_MODEL"] = BATCH_RANKER
    users = ["HomePageViewer", *(("CreatorToolsFlood", *BATCH_USERS) if condition.flood else ())]
    with TritonServer(repository, free_ports(), models=models) as server:
        warm_up_recommend(server.grpc_url, pages=40)
        before = fetch(server.metrics_url)
        started = time.time()
        stats = run_locust(
            server.grpc_url,
            users,
            args.viewers,
            args.seconds,
            workdir / condition.name / "locust",
            env,
            fixed=(args.creators + len(BATCH_USERS)) if condition.flood else 0,
        )
        window = Window(before, fetch(server.metrics_url))
    return {
        "condition": dataclasses.asdict(condition),
        "models": models,
        "wall_s": round(time.time() - started, 1),
        "locust": stats,
        **home_figures(window),
    }


def combine(results: list[dict]) -> dict:
    """Median over rounds of each figure; the rounds themselves are kept."""

    def median(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    names = {name for r in results for name in r["locust"]}
    locust = {
        name: {
            key: median(r["locust"][name][key] for r in results if name in r["locust"])
            for key in ("requests", "failures", "requests_per_s", "p50_ms", "p99_ms")
        }
        for name in names
    }
    return {
        "condition": results[0]["condition"],
        "models": results[0]["models"],
        "locust": locust,
        "home_degraded_share": median(r["home_degraded_share"] for r in results),
        "home_server_p99_ms": median(r["home_server_p99_ms"] for r in results),
        "rounds": results,
    }


def summary_table(report: dict) -> Table:
    table = Table(title=f"home surface during a surge ({report['viewers']} viewers x 4 pages/s)")
    for column in (
        "condition",
        "home p50 ms",
        "home p99 ms",
        "home p99 (server) ms",
        "home degraded",
        "home failures",
        "creator pages/s",
        "creator refused/s",
        "batch req/s",
    ):
        table.add_column(column, justify="right")
    for name, result in report["conditions"].items():
        home = result["locust"].get(HOME_LABEL, {})
        creator = result["locust"].get(CREATOR_LABEL, {})
        refused = result["locust"].get(CREATOR_REFUSED_LABEL, {})
        batch = ", ".join(
            f"{label.split(':')[1].split()[0][:5]} {row['requests_per_s']:.1f}"
            for label, row in result["locust"].items()
            if label.startswith("batch:")
        )
        server_p99 = result["home_server_p99_ms"]
        degraded = result["home_degraded_share"]
        table.add_row(
            name,
            f"{home.get('p50_ms', 0):.0f}",
            f"{home.get('p99_ms', 0):.0f}",
            f"{server_p99:.0f}" if server_p99 is not None else "-",
            f"{degraded:.1%}" if degraded is not None else "-",
            f"{home.get('failures', 0):.0f}",
            f"{creator.get('requests_per_s', 0):.1f}",
            f"{refused.get('requests_per_s', 0):.1f}",
            batch or "-",
        )
    return table


def plot(report: dict, path: Path) -> Path | None:
    plt = pyplot()
    if plt is None:
        return None
    names = list(report["conditions"])
    results = [report["conditions"][n] for n in names]
    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.5))
    xs = list(range(len(names)))
    labels = [n.replace("_", "\n") for n in names]
    p50 = [r["locust"][HOME_LABEL]["p50_ms"] for r in results]
    p99 = [r["locust"][HOME_LABEL]["p99_ms"] for r in results]
    left.bar([x - 0.2 for x in xs], p50, 0.4, label="p50")
    left.bar([x + 0.2 for x in xs], p99, 0.4, label="p99")
    left.set_xticks(xs, labels)
    left.set_ylabel("home page latency, client side (ms)")
    left.legend()
    middle.bar(xs, [100 * (r["home_degraded_share"] or 0) for r in results], 0.5, color="tab:red")
    middle.set_xticks(xs, labels)
    middle.set_ylabel("home pages degraded (%)")
    admitted = [r["locust"].get(CREATOR_LABEL, {}).get("requests_per_s", 0) for r in results]
    refused = [r["locust"].get(CREATOR_REFUSED_LABEL, {}).get("requests_per_s", 0) for r in results]
    right.bar(xs, admitted, 0.5, label="served")
    right.bar(xs, refused, 0.5, bottom=admitted, label="refused over quota")
    right.set_xticks(xs, labels)
    right.set_ylabel("creator_tools pages/s")
    right.legend()
    machine = report["machine"]
    title = (
        "Home surface under a surge while creator_tools floods and batch jobs run: "
        f"{machine['cpu']}, {machine['cores']} cores, {machine['date'][:10]}"
    )
    return save(fig, path, title)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_load_arguments(parser, "perf/reports/isolation.json")
    parser.add_argument("--creators", type=int, default=4, help="creator-tool users, back to back")
    args = parser.parse_args()
    base = route_repository(args.repository)
    report = {
        "benchmark": "isolation",
        "machine": machine_info(),
        "viewers": args.viewers,
        "creators": args.creators,
        "seconds": args.seconds,
        "rounds": args.rounds,
    }
    run_alternating(
        CONDITIONS,
        args.rounds,
        args.seconds,
        lambda condition, workdir: measure(condition, base, args, workdir),
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
