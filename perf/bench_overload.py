"""Benchmark: `recommend` at three times its capacity, behind Triton's queue policy.

    .venv/bin/python -m perf.bench_overload [--seconds 30] [--overload 3.0] [--queue 4] [--timeout-ms 25] [--repeats 3]

1. Capacity: a closed loop (`--clients` callers, each sending the next page as soon as the
   last one answered) on the route as deployed; pages per second answered.
2. Overload: the same route redeployed with Triton's queue policy (dynamic batching's
   `default_queue_policy`: at most `--queue` requests waiting, each for at most
   `--timeout-ms`, REJECT), driven open loop at `--overload` x capacity: requests leave
   on a fixed schedule whether or not earlier ones have answered, as real traffic does.
   Triton refuses what does not fit with UNAVAILABLE, which gRPC clients treat as
   retryable (the typed clients raise ServerUnavailableError).
3. The same open-loop overload against the route without the policy, for comparison
   (one run, alternating is not needed: it is the baseline the policy must beat).

Reports admitted throughput, rejection rate, p50/p99 of admitted pages against the route's
CPU budget (`cpu_p99_us` from its spec), and how fast refusals came back. The generator
runs on the server's own cores, so each run also reports its CPU (in cores) and how late
its requests left their schedule; `--repeats` runs the policy's overload several times on
one server and the verdict takes the median p99. Writes
perf/reports/overload.json and overload.png. Not a test: it takes a few minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import tritonclient.grpc.aio as grpcaio
from tritonclient.utils import InferenceServerException

from marquee.paths import model_repository
from marquee.server import TritonServer, free_ports
from marquee.serving import warm_up_recommend
from marquee.specs import DynamicBatching, QueuePolicy
from marquee.specs.recommend import RECOMMEND
from perf.bench_surge import ROUTE_MODELS, variant_repository
from perf.machine import report_header

REPORT = Path(__file__).resolve().parent / "reports" / "overload.json"
RETRYABLE = "StatusCode.UNAVAILABLE"
PAGE_POOL = 256  # distinct pages the open loop cycles through


def page_inputs(user: int) -> list:
    values = {
        "user_id": np.array([user % 5000], np.int64),
        "region": np.array([user % 8], np.int64),
        "history": np.array([(user * 7 + k) % 20_000 for k in range(12)], np.int64),
        "context": np.array([1, 20], np.int64),
        "n": np.array([20], np.int32),
    }
    inputs = []
    for name, array in values.items():
        tensor = grpcaio.InferInput(name, list(array.shape), "INT32" if array.dtype == np.int32 else "INT64")
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs


@dataclasses.dataclass
class Call:
    sent: float
    seconds: float
    status: str  # "ok" or the gRPC status


async def _one(client, inputs: list, started: float) -> Call:
    sent = time.monotonic()
    try:
        await client.infer(RECOMMEND.name, inputs, client_timeout=10)
        status = "ok"
    except InferenceServerException as error:
        status = str(error.status())
    return Call(sent - started, time.monotonic() - sent, status)


async def closed_loop(url: str, clients: int, seconds: float) -> list[Call]:
    client = grpcaio.InferenceServerClient(url)
    started = time.monotonic()
    calls: list[Call] = []

    async def caller(index: int):
        user = index
        while time.monotonic() - started < seconds:
            calls.append(await _one(client, page_inputs(user), started))
            user += clients

    await asyncio.gather(*(caller(i) for i in range(clients)))
    await client.close()
    return calls


async def open_loop(url: str, rate: float, seconds: float) -> tuple[list[Call], dict]:
    """Requests leave every 1/rate s, answered or not. Also returns what the generator
    itself cost: it shares the server's cores, so its CPU and lateness are reported."""
    pages = [page_inputs(user) for user in range(PAGE_POOL)]  # built before the clock starts
    client = grpcaio.InferenceServerClient(url)
    cpu_before = time.process_time()  # every thread of this process, gRPC's included
    started = time.monotonic()
    tasks, lags = [], []
    for index in range(int(rate * seconds)):
        due = started + index / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        lags.append((time.monotonic() - due) * 1000)
        tasks.append(asyncio.ensure_future(_one(client, pages[index % PAGE_POOL], started)))
    calls = list(await asyncio.gather(*tasks))
    wall = time.monotonic() - started
    generator = {
        "cpu_cores": round((time.process_time() - cpu_before) / wall, 2),
        "send_lag_p50_ms": round(float(np.percentile(lags, 50)), 1),
        "send_lag_p99_ms": round(float(np.percentile(lags, 99)), 1),
    }
    await client.close()
    return calls, generator


def summarise(calls: list[Call], seconds: float) -> dict:
    ok = [c.seconds * 1000 for c in calls if c.status == "ok"]
    rejected = [c.seconds * 1000 for c in calls if c.status == RETRYABLE]
    other = sorted({c.status for c in calls} - {"ok", RETRYABLE})

    def pct(values: list[float], q: float) -> float | None:
        return round(float(np.percentile(values, q)), 1) if values else None

    return {
        "sent": len(calls),
        "sent_per_s": round(len(calls) / seconds, 1),
        "admitted_per_s": round(len(ok) / seconds, 1),
        "rejected": len(rejected),
        "rejection_rate": round(len(rejected) / max(len(calls), 1), 3),
        "other_failures": len(calls) - len(ok) - len(rejected),
        "other_statuses": other,
        "admitted_p50_ms": pct(ok, 50),
        "admitted_p99_ms": pct(ok, 99),
        "rejected_p50_ms": pct(rejected, 50),
        "rejected_p99_ms": pct(rejected, 99),
    }


def per_second(calls: list[Call], seconds: float) -> dict:
    bins = int(seconds) + 1
    series = {"ok": [0] * bins, "rejected": [0] * bins, "p99_ms": []}
    for call in calls:
        key = "ok" if call.status == "ok" else "rejected"
        series[key][min(int(call.sent), bins - 1)] += 1
    for second in range(bins):
        window = [c.seconds * 1000 for c in calls if c.status == "ok" and int(c.sent) == second]
        series["p99_ms"].append(round(float(np.percentile(window, 99)), 1) if window else None)
    return series


def with_queue_policy(queue: int, timeout_ms: float):
    policy = QueuePolicy(max_queue_size=queue, default_timeout_us=int(timeout_ms * 1000), timeout_action="REJECT")
    return dataclasses.replace(RECOMMEND, dynamic_batching=DynamicBatching(default_queue_policy=policy))


def overload_run(url: str, rate: float, seconds: float) -> dict:
    calls, generator = asyncio.run(open_loop(url, rate, seconds))
    return {**summarise(calls, seconds), "generator": generator, "per_second": per_second(calls, seconds)}


def median_run(repeats: list[dict]) -> dict:
    """The repeat whose admitted p99 is the median (the lower middle one for an even count)."""
    ranked = sorted(repeats, key=lambda run: run["admitted_p99_ms"] or float("inf"))
    return ranked[(len(ranked) - 1) // 2]


def serve(repository: Path):
    server = TritonServer(repository, free_ports(), models=list(ROUTE_MODELS)).start(timeout=300)
    warm_up_recommend(server.grpc_url)
    return server


def plot(report: dict, path: Path) -> None:
    from perf.plots import pyplot, save

    plt = pyplot()
    if plt is None:
        return
    figure, (rate_axis, latency_axis) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, style in (("queue_policy", "-"), ("no_policy", "--")):
        series = report["runs"][name]["per_second"]
        seconds = range(len(series["ok"]))
        rate_axis.plot(seconds, series["ok"], style, label=f"{name}: answered/s")
        rate_axis.plot(seconds, series["rejected"], style, label=f"{name}: refused or timed out/s")
        latency_axis.plot(seconds, series["p99_ms"], style, label=f"{name}: admitted p99")
    rate_axis.axhline(report["capacity_pages_per_s"], color="grey", lw=0.8, label="capacity")
    rate_axis.set_xlabel("second the request was sent")
    rate_axis.set_ylabel("requests / s")
    rate_axis.legend(fontsize=7)
    latency_axis.axhline(2 * report["route_budget_ms"], color="red", lw=0.8, label="2 x route budget")
    latency_axis.set_yscale("log")
    latency_axis.set_xlabel("second")
    latency_axis.set_ylabel("ms")
    latency_axis.legend(fontsize=7)
    title = (f"recommend at {report['overload']}x capacity ({report['offered_per_s']}/s offered); "
             f"{report['machine']['cpu']}, load {report['load_average_before'][0]}")  # fmt: skip
    save(figure, path, title)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=4, help="closed-loop callers for the capacity run")
    parser.add_argument("--overload", type=float, default=3.0)
    parser.add_argument("--queue", type=int, default=4, help="max_queue_size")
    parser.add_argument("--timeout-ms", type=float, default=25.0, help="default_timeout_microseconds, in ms")
    parser.add_argument("--repeats", type=int, default=1, help="overload runs with the policy, on one server")
    parser.add_argument("--report", type=Path, default=REPORT)
    args = parser.parse_args()
    budget_ms = RECOMMEND.budget.cpu_p99_us / 1000
    load_before = os.getloadavg()
    base = model_repository()
    runs = {}
    with tempfile.TemporaryDirectory(prefix="marquee-overload-") as tmp:
        server = serve(base)
        try:
            capacity_calls = asyncio.run(closed_loop(server.grpc_url, args.clients, args.seconds))
            capacity = summarise(capacity_calls, args.seconds)["admitted_per_s"]
            rate = capacity * args.overload
            print(f"capacity {capacity:.1f} pages/s; offering {rate:.1f}/s", flush=True)
            runs["no_policy"] = overload_run(server.grpc_url, rate, args.seconds)
        finally:
            server.stop()
        variant = variant_repository(base, Path(tmp) / "policy", [with_queue_policy(args.queue, args.timeout_ms)])
        server = serve(variant)
        try:
            repeats = [overload_run(server.grpc_url, rate, args.seconds) for _ in range(args.repeats)]
        finally:
            server.stop()
    runs["queue_policy"] = median_run(repeats)
    report = {
        **report_header("recommend overload behind Triton's queue policy", load_before),
        "seconds_per_run": args.seconds,
        "capacity_clients": args.clients,
        "capacity_pages_per_s": capacity,
        "overload": args.overload,
        "offered_per_s": round(rate, 1),
        "queue_policy": {"max_queue_size": args.queue, "default_timeout_ms": args.timeout_ms, "action": "REJECT"},
        "route_budget_ms": budget_ms,
        "runs": runs,
        # Every repeat with the policy; `runs.queue_policy` is the one with the median p99.
        "queue_policy_repeats": [{k: v for k, v in run.items() if k != "per_second"} for run in repeats],
    }
    policy = runs["queue_policy"]
    report["verdict"] = {
        "admitted_p99_within_2x_budget": policy["admitted_p99_ms"] is not None
        and policy["admitted_p99_ms"] <= 2 * budget_ms,
        "refusals_retryable": policy["other_failures"] == 0,
        "refused_quickly_p99_ms": policy["rejected_p99_ms"],
    }
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.report.with_suffix(".png"))
    for name, run in runs.items():
        print(name, {k: v for k, v in run.items() if k != "per_second"})
    print(report["verdict"])


if __name__ == "__main__":
    main()
