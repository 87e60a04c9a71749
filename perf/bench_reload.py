"""Benchmark: swap the ranker's version with explicit model control while locust drives
`recommend`; the route must not fail a single request.

    .venv/bin/python -m perf.bench_reload [--seconds 60] [--viewers 4]

The server runs the route's models in explicit model-control mode; `ranker_int8` gets a
version 2 (the version 1 files under a new version number: what is measured is the
swap, not a new model). While locust's HomePageViewer users (perf/load/scenarios.py)
load the route, the ranker goes, through `marquee.rollout.control.ModelControl` (the
repository API, with the admin key):
  v1 -> v1+v2 (load the new version; Triton routes to the highest ready version)
     -> v2 (unload the old one)  -> v1+v2 -> v1 (and back).
Issue 13's tests/integration/test_experiments.py checks a rollback under load in the
default run, with a thread pool; this is the same operation under locust, with a
p99-over-time plot and each step's duration. Writes perf/reports/reload.json and .png.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from marquee.paths import model_repository
from marquee.rollout.control import ModelControl
from marquee.server import TritonServer, free_ports
from marquee.serving import warm_up_recommend
from perf.bench_surge import ROUTE_MODELS, variant_repository
from perf.machine import report_header

REPORT = Path(__file__).resolve().parent / "reports" / "reload.json"
RANKER = "ranker_int8"
STEPS = ([1, 2], [2], [1, 2], [1])


def locust(grpc_url: str, viewers: int, seconds: int, prefix: Path) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-m", "locust", "-f", "perf/load/scenarios.py", "--host", grpc_url, "--headless",
        "-u", str(viewers), "-r", str(viewers), "-t", f"{seconds}s", "--csv", str(prefix), "--csv-full-history",
        "--only-summary", "--stop-timeout", "5", "HomePageViewer",
    ]  # fmt: skip
    return subprocess.run(command, timeout=seconds + 90, capture_output=True, text=True, check=False)


def history(prefix: Path) -> list[dict]:
    """locust's per-second rows for `recommend`: elapsed second, requests/s, failures/s, p99 ms."""
    rows = []
    with Path(f"{prefix}_stats_history.csv").open() as f:
        reader = list(csv.DictReader(f))
    start = int(reader[0]["Timestamp"]) if reader else 0
    for row in reader:
        if row["Name"] != "recommend" or row["99%"] in ("N/A", ""):
            continue
        rows.append({
            "second": int(row["Timestamp"]) - start,
            "requests_per_s": float(row["Requests/s"]),
            "failures_per_s": float(row["Failures/s"]),
            "p99_ms": float(row["99%"]),
        })  # fmt: skip
    return rows


def totals(prefix: Path) -> dict:
    with Path(f"{prefix}_stats.csv").open() as f:
        row = next(r for r in csv.DictReader(f) if r["Name"] == "recommend")
    return {
        "requests": int(row["Request Count"]),
        "failures": int(row["Failure Count"]),
        "p50_ms": float(row["50%"]),
        "p99_ms": float(row["99%"]),
        "requests_per_s": float(row["Requests/s"]),
    }


def swap_versions(control: ModelControl, started: float, seconds: int) -> list[dict]:
    """The steps, spread over the middle of the run; each with its start, duration and result."""
    steps = []
    for index, versions in enumerate(STEPS):
        due = started + seconds * (0.2 + 0.6 * index / (len(STEPS) - 1))
        time.sleep(max(0.0, due - time.monotonic()))
        at = time.monotonic()
        control.serve_versions(RANKER, versions)
        steps.append({
            "at_s": round(at - started, 2),
            "took_s": round(time.monotonic() - at, 2),
            "asked": versions,
            "ready_after": control.ready_versions(RANKER),
        })  # fmt: skip
    return steps


def plot(report: dict, path: Path) -> None:
    from perf.plots import pyplot, save

    plt = pyplot()
    if plt is None:
        return
    figure, axis = plt.subplots(figsize=(10, 4))
    rows = report["history"]
    axis.plot([r["second"] for r in rows], [r["p99_ms"] for r in rows], label="recommend p99 (locust, ms)")
    axis.plot([r["second"] for r in rows], [r["failures_per_s"] for r in rows], label="failures/s")
    for step in report["steps"]:
        axis.axvline(step["at_s"], color="grey", lw=0.8)
        axis.text(step["at_s"], axis.get_ylim()[1] * 0.9, f"v{step['asked']}", fontsize=7)
    axis.set_xlabel("second")
    axis.legend(fontsize=8)
    result = report["locust"]
    title = (f"ranker version swap under load: {result['requests']} pages, {result['failures']} failed; "
             f"{report['machine']['cpu']}, load {report['load_average_before'][0]}")  # fmt: skip
    save(figure, path, title)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--viewers", type=int, default=4)
    parser.add_argument("--report", type=Path, default=REPORT)
    args = parser.parse_args()
    load_before = os.getloadavg()
    base = model_repository()
    with tempfile.TemporaryDirectory(prefix="marquee-reload-") as tmp:
        repository = variant_repository(base, Path(tmp) / "repository", [])
        (repository / RANKER / "2").symlink_to((base / RANKER / "1").resolve(), target_is_directory=True)
        server = TritonServer(repository, free_ports(), models=list(ROUTE_MODELS)).start(timeout=300)
        try:
            warm_up_recommend(server.grpc_url)
            control = ModelControl(server.http_url, server.admin_key)
            prefix = Path(tmp) / "locust"
            started = time.monotonic()
            outcome: dict = {}
            runner = threading.Thread(target=lambda: outcome.update(run=locust(server.grpc_url, args.viewers,
                                                                               args.seconds, prefix)))  # fmt: skip
            runner.start()
            steps = swap_versions(control, started, args.seconds)
            runner.join()
            result, rows = totals(prefix), history(prefix)
        finally:
            server.stop()
    report = {
        **report_header("ranker version swap under locust load", load_before),
        "seconds": args.seconds,
        "viewers": args.viewers,
        "steps": steps,
        "locust": result,
        "zero_failed_requests": result["failures"] == 0,
        "history": rows,
    }
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.report.with_suffix(".png"))
    print(json.dumps({k: report[k] for k in ("steps", "locust", "zero_failed_requests")}, indent=2))


if __name__ == "__main__":
    main()
