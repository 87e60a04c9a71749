"""Soak: `recommend` at about 70% of its capacity for a long while, watching memory and p99.

    .venv/bin/python -m perf.bench_soak [--minutes 30] [--share 0.7] [--sample-s 10]

Measures capacity first (the closed loop of perf/bench_overload.py), then drives the route
open loop at `--share` of it for `--minutes`, and every `--sample-s` seconds records:
resident memory of tritonserver and of each Python stub (per model, from /proc), and the
p50/p99 of the pages answered in that window. Growth is flagged when a series' least-
squares slope over the second half of the run, extrapolated to an hour, exceeds
`--growth-mib-per-hour` (memory) or doubles the first window's p99 (latency). Writes
perf/reports/soak.json and soak.png, labelled with the duration actually run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

import numpy as np
import tritonclient.grpc.aio as grpcaio

from marquee.paths import model_repository
from marquee.server.stub_watchdog import stub_processes
from perf.bench_overload import Call, _one, closed_loop, page_inputs, serve, summarise
from perf.machine import report_header

REPORT = Path(__file__).resolve().parent / "reports" / "soak.json"


def rss_mib(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    line = next((line for line in status.splitlines() if line.startswith("VmRSS:")), "VmRSS: 0 kB")
    return int(line.split()[1]) / 1024


def memory_sample(server_pid: int) -> dict[str, float]:
    sample = {"tritonserver": round(rss_mib(server_pid), 1)}
    for stub in stub_processes(server_pid).values():
        if stub.alive:
            key = f"stub:{stub.model}"
            sample[key] = round(sample.get(key, 0.0) + rss_mib(stub.pid), 1)
    return sample


async def soak(url: str, rate: float, seconds: float, sample_s: float, server_pid: int) -> list[dict]:
    client = grpcaio.InferenceServerClient(url)
    started = time.monotonic()
    window: list[Call] = []
    samples: list[dict] = []
    pending: set = set()

    def close_window(now: float) -> None:
        ok = [c.seconds * 1000 for c in window if c.status == "ok"]
        samples.append({
            "second": round(now - started, 1),
            "pages": len(window),
            "failed": sum(c.status != "ok" for c in window),
            "p50_ms": round(float(np.percentile(ok, 50)), 1) if ok else None,
            "p99_ms": round(float(np.percentile(ok, 99)), 1) if ok else None,
            "rss_mib": memory_sample(server_pid),
        })  # fmt: skip
        window.clear()

    next_sample = started + sample_s
    index = 0
    while time.monotonic() - started < seconds:
        due = started + index / rate
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        task = asyncio.ensure_future(_one(client, page_inputs(index), started))
        task.add_done_callback(lambda t: (window.append(t.result()), pending.discard(t)))
        pending.add(task)
        index += 1
        if time.monotonic() >= next_sample:
            close_window(time.monotonic())
            next_sample += sample_s
    await asyncio.gather(*pending)
    close_window(time.monotonic())
    await client.close()
    return samples


def slope_per_hour(samples: list[dict], value) -> float:
    """Least-squares slope of `value(sample)` over the second half of the run, per hour."""
    half = samples[len(samples) // 2 :]
    points = [(s["second"], value(s)) for s in half if value(s) is not None]
    if len(points) < 3:
        return 0.0
    x, y = np.array(points, dtype=float).T
    return float(np.polyfit(x, y, 1)[0] * 3600)


def growth(samples: list[dict], limit_mib_per_hour: float) -> dict:
    series = sorted({key for s in samples for key in s["rss_mib"]})
    memory = {key: round(slope_per_hour(samples, lambda s, k=key: s["rss_mib"].get(k)), 1) for key in series}
    first_p99 = next((s["p99_ms"] for s in samples if s["p99_ms"] is not None), None)
    last_p99 = [s["p99_ms"] for s in samples[-3:] if s["p99_ms"] is not None]
    return {
        "rss_slope_mib_per_hour": memory,
        "rss_growing": sorted(key for key, slope in memory.items() if slope > limit_mib_per_hour),
        "p99_first_window_ms": first_p99,
        "p99_last_windows_ms": last_p99,
        "p99_growing": bool(first_p99 and last_p99 and min(last_p99) > 2 * first_p99),
    }


def plot(report: dict, path: Path) -> None:
    from perf.plots import pyplot, save

    plt = pyplot()
    if plt is None:
        return
    samples = report["samples"]
    seconds = [s["second"] / 60 for s in samples]
    figure, (memory_axis, latency_axis) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for key in sorted({k for s in samples for k in s["rss_mib"]}):
        memory_axis.plot(seconds, [s["rss_mib"].get(key) for s in samples], label=key)
    memory_axis.set_ylabel("resident MiB")
    memory_axis.legend(fontsize=7, ncol=2)
    latency_axis.plot(seconds, [s["p50_ms"] for s in samples], label="p50")
    latency_axis.plot(seconds, [s["p99_ms"] for s in samples], label="p99")
    latency_axis.set_ylabel("ms (per window)")
    latency_axis.set_xlabel("minutes")
    latency_axis.legend(fontsize=8)
    flags = report["growth"]
    title = (f"recommend soak: {report['minutes_run']:.1f} min at {report['rate_per_s']}/s "
             f"({report['share']:.0%} of {report['capacity_pages_per_s']}/s); growing: "
             f"{', '.join(flags['rss_growing']) or 'no memory'}{', p99' if flags['p99_growing'] else ''}; "
             f"{report['machine']['cpu']}, load {report['load_average_before'][0]}")  # fmt: skip
    save(figure, path, title)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--share", type=float, default=0.7)
    parser.add_argument("--sample-s", type=float, default=10)
    parser.add_argument("--capacity-s", type=float, default=20)
    parser.add_argument("--growth-mib-per-hour", type=float, default=50.0)
    parser.add_argument("--report", type=Path, default=REPORT)
    args = parser.parse_args()
    load_before = os.getloadavg()
    server = serve(model_repository())
    started = time.monotonic()
    try:
        capacity = summarise(asyncio.run(closed_loop(server.grpc_url, 4, args.capacity_s)), args.capacity_s)
        rate = round(capacity["admitted_per_s"] * args.share, 1)
        print(f"capacity {capacity['admitted_per_s']} pages/s; soaking at {rate}/s for {args.minutes} min", flush=True)
        samples = asyncio.run(soak(server.grpc_url, rate, args.minutes * 60, args.sample_s, server.process.pid))
    finally:
        server.stop()
    report = {
        **report_header("recommend soak", load_before),
        "minutes_asked": args.minutes,
        "minutes_run": round((time.monotonic() - started - args.capacity_s) / 60, 2),
        "capacity_pages_per_s": capacity["admitted_per_s"],
        "share": args.share,
        "rate_per_s": rate,
        "pages": sum(s["pages"] for s in samples),
        "failed": sum(s["failed"] for s in samples),
        "growth": growth(samples, args.growth_mib_per_hour),
        "samples": samples,
    }
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.report.with_suffix(".png"))
    print(json.dumps({k: report[k] for k in ("minutes_run", "pages", "failed", "growth")}, indent=2))


if __name__ == "__main__":
    main()
