"""A real Prometheus (Debian's `prometheus`) scraping three embedded tritonservers (the
recommend routes, the text moderation route, the transcribe routes) and a real moderation
worker's metrics endpoint, with the rules of deploy/prometheus/ loaded. After real traffic
(recommend pages on two surfaces, moderated texts on two surfaces, a transcribed clip,
queue items decided by the worker through the stand-in `moderate_text`):
- every recording rule evaluates to at least one series and no rule reports an
  evaluation error;
- every panel query of every dashboard in deploy/grafana/ runs without an error and
  returns data, and every template variable lists values.
Asked through Prometheus's HTTP API. The servers are the session's, shared with the other
integration tests; this module adds its traffic, a worker and Prometheus (one of each for
both tests)."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient
import yaml

from clients import RecommendClient
from clients.moderation import ModerationClient
from marquee.moderation.queue.sqlite import SqliteQueue
from marquee.observability import dashboards, rules
from tests.fixtures_moderation_queue import worker_command
from tests.fixtures_whisper import transcribe
from tests.integration.conftest import ABSENT_MODEL, MISSING_RETRIEVAL_ROUTE

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROMETHEUS = shutil.which("prometheus")
ROOT = Path(__file__).resolve().parents[2]
# Route metrics added to the routes alongside these rules; rules over them are tolerated
# as empty only while the server does not export them at all.
ROUTE_METRICS = (rules.ROUTE_DURATION, rules.STAGE_DURATION, rules.ROUTE_REQUESTS, rules.ROUTE_COMPUTE)
QUEUE_TEXTS = ["a fine post", "hmm, maybe", "darn it", ""]  # allow, review, block, quarantined (input)
# Through the real moderate_text route: an allow, a likely block and a bad input ("error").
ROUTE_TEXTS = ["what a lovely episode", "you are a pathetic little clown", ""]
SPOKEN = "Counting the seconds of audio."
SCRAPED_TARGETS = 4  # three tritonservers and the queue worker


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        return reply.read().decode()


class Prometheus:
    def __init__(self, url: str, process: subprocess.Popen, log_path: Path):
        self.url = url
        self.process = process
        self.log_path = log_path

    def api(self, path: str, **params: str) -> dict:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        body = json.loads(_get(f"{self.url}/api/v1/{path}{query}"))
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        return self.api("query", query=expr)["result"]

    def try_query(self, expr: str) -> tuple[list[dict], str]:
        """(result, "") or ([], Prometheus's error) for a query Prometheus refuses."""
        try:
            body = json.loads(_get(f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"))
        except urllib.error.HTTPError as error:
            body = json.loads(error.read().decode() or "{}")
        if body.get("status") != "success":
            return [], f"{body.get('errorType')}: {body.get('error')}"
        return body["data"]["result"], ""

    def wait_for(self, what: str, check, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"prometheus exited with {self.process.returncode}; log:\n{self.log_path.read_text()}")
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                pytest.fail(f"waited {timeout:.0f}s for {what}; log tail:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.25)


def _metric_names(exposition: str) -> set[str]:
    return {line.split("{")[0].split(" ")[0] for line in exposition.splitlines() if line and not line.startswith("#")}


@pytest.fixture(scope="module")
def queue_worker(stand_in_route, tmp_path_factory):
    """A real worker process with --metrics-port, over a SQLite store holding a few items."""
    tmp_path = tmp_path_factory.mktemp("prometheus-live-worker")
    for flag in ("fail", "refuse", "flaky", "legacy", "hold"):
        stand_in_route.switch(flag, False)
    store = tmp_path / "queue.sqlite"
    with SqliteQueue(store) as queue:
        queue.enqueue("text", QUEUE_TEXTS)
    port = _free_port()
    log_path = tmp_path / "worker.log"
    command = worker_command(store, stand_in_route.server.grpc_url, "w-prom", "--metrics-port", str(port))
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(ROOT)}
    with log_path.open("w") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while True:
        try:
            _get(f"http://127.0.0.1:{port}/metrics")
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"worker metrics endpoint never answered; log:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
    yield store, f"127.0.0.1:{port}"
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    assert process.returncode == 0, log_path.read_text()[-3000:]


@pytest.fixture(scope="module")
def prometheus(triton, text_triton, transcribe_triton, queue_worker, tmp_path_factory):
    if PROMETHEUS is None:
        pytest.skip("no prometheus on PATH (Debian package `prometheus`, installed by ./bootstrap.sh --test)")
    tmp_path = tmp_path_factory.mktemp("prometheus-live")
    _, queue_target = queue_worker
    triton_targets = [urllib.parse.urlsplit(s.metrics_url).netloc for s in (triton, text_triton, transcribe_triton)]
    config = rules.prometheus_config(
        triton_targets,
        [queue_target],
        [str(rules.RECORDING_FILE), str(rules.ALERT_FILES["cpu"])],
        interval="1s",
    )
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    port = _free_port()
    log_path = tmp_path / "prometheus.log"
    command = [
        PROMETHEUS,
        f"--config.file={config_path}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1h",
    ]
    with log_path.open("w") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    server = Prometheus(f"http://127.0.0.1:{port}", process, log_path)

    def ready() -> bool:
        try:
            return "Ready" in _get(f"{server.url}/-/ready", timeout=1)
        except OSError:
            return False

    try:
        server.wait_for("prometheus to be ready", ready)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _targets_scraped(server: Prometheus, scrapes: int, targets: int) -> bool:
    """Each of `targets` targets was scraped successfully at least `scrapes` times in the last minute."""
    counts = [float(r["value"][1]) for r in server.query("sum_over_time(up[1m])")]
    return len(counts) >= targets and min(counts) >= scrapes


@dataclass
class Servers:
    recommend: object
    moderation: object
    transcription: object
    store: Path
    clip: bytes


def _send_traffic(servers: Servers, round_: int) -> None:
    for surface in ("home", "search"):
        with RecommendClient(servers.recommend.grpc_url, timeout_s=10.0, surface=surface) as client:
            for user in range(10):
                client.recommend(user, user % 8, [1, 2, 3], n=10, device=1, hour=20)
    # A deployment whose retrieval model is not loaded: it answers, degraded, and says so.
    with RecommendClient(servers.recommend.grpc_url, timeout_s=10.0, model=MISSING_RETRIEVAL_ROUTE) as client:
        for user in range(3):
            client.recommend(user, 0, [], n=10)
    with SqliteQueue(servers.store) as queue:
        queue.enqueue("text", [f"round {round_}: fine", f"round {round_}: hmm"])
    # The moderation and transcription dashboards' routes: texts on two surfaces, and one
    # short spoken clip (Whisper's encoder always reads 30 s, about a second here).
    for surface in ("moderation_backoffice", "creator_tools"):
        with ModerationClient(servers.moderation.grpc_url, surface=surface) as client:
            client.moderate_text(ROUTE_TEXTS)
    with grpcclient.InferenceServerClient(servers.transcription.grpc_url) as client:
        transcribe(client, [servers.clip], surface="batch")


@dataclass
class AfterTraffic:
    prometheus: Prometheus
    servers: Servers
    started: float


@pytest.fixture(scope="module")
def after_traffic(prometheus, triton, text_triton, transcribe_triton, queue_worker, espeak_clips) -> AfterTraffic:
    """Prometheus after two rounds of real traffic to every scraped server."""
    store, _ = queue_worker
    servers = Servers(triton, text_triton, transcribe_triton, store, espeak_clips.get(SPOKEN).wav)
    started = time.monotonic()
    prometheus.wait_for(
        "a first successful scrape of every target", lambda: _targets_scraped(prometheus, 1, SCRAPED_TARGETS)
    )
    # Two rounds of real traffic with scrapes in between: a series made by the first
    # request of its labels (a new surface, say) first appears with its count already
    # there, and a rate needs the increase after it.
    _send_traffic(servers, 1)
    prometheus.wait_for("two more scrapes of every target", lambda: _targets_scraped(prometheus, 3, SCRAPED_TARGETS))
    _send_traffic(servers, 2)
    print(f"two rounds of traffic and the scrapes between them: {time.monotonic() - started:.1f} s")
    return AfterTraffic(prometheus, servers, started)


def _uses(names: set[str], tolerated: set[str]) -> bool:
    return any(name.startswith(t.removesuffix("_total")) for name in names for t in tolerated)


def _matching(found: list[dict], **labels: str) -> list[float]:
    return [float(r["value"][1]) for r in found if labels.items() <= r["metric"].items()]


def test_every_recording_rule_evaluates_to_series_after_real_traffic(after_traffic, triton):
    prometheus, started = after_traffic.prometheus, after_traffic.started
    exported = _metric_names(_get(triton.metrics_url))
    tolerated = {name for name in ROUTE_METRICS if not any(n.startswith(name.removesuffix("_total")) for n in exported)}
    if tolerated:
        print(f"not exported by this server yet, rules over them tolerated as empty: {sorted(tolerated)}")
    groups = yaml.safe_load(rules.RECORDING_FILE.read_text())["groups"]
    expressions = {rule["record"]: rule["expr"] for group in groups for rule in group["rules"]}
    recorded = set(expressions)

    def needs_tolerance(name: str) -> bool:
        return _uses(set(re.findall(r"\b(?:marquee|nv)_[a-z_]+", expressions[name])) - recorded, tolerated)

    results: dict[str, list] = {}

    def unmet() -> list[str]:
        results.update({name: prometheus.query(name) for name in expressions})
        problems = [f"{name}: no series" for name, found in results.items() if not found and not needs_tolerance(name)]
        checks = [
            (rules.FALLBACK_RATIO, {"route": "recommend"}, lambda v: 0.0 <= v <= 1.0),
            (rules.MODEL_REQUEST_RATE, {"model": "recommend"}, lambda v: v > 0),
            (rules.MODEL_MEAN_LATENCY, {"model": "recommend"}, lambda v: 0 < v < 5.0),
            (rules.QUEUE_QUARANTINED, {"error_kind": "input"}, lambda v: v == 1.0),
            (rules.QUEUE_REVIEW_BACKLOG, {}, lambda v: v >= 1.0),
            (rules.QUEUE_DECISION_RATE, {"decision": "allow"}, lambda v: v > 0),
        ]
        if rules.ROUTE_DURATION not in tolerated:
            for surface in ("home", "search"):
                checks.append((rules.P99_ROUTE_SURFACE, {"route": "recommend", "surface": surface}, math.isfinite))
            checks.append((rules.P99_ROUTE, {"route": "recommend"}, lambda v: math.isfinite(v) and 0 < v < 120))
            checks.append((rules.P99_STAGE, {"route": "recommend", "surface": "home", "stage": "rank"}, math.isfinite))
        if rules.ROUTE_COMPUTE not in tolerated:
            checks.append((rules.COMPUTE_PER_1000, {"route": "recommend", "surface": "home"}, lambda v: v > 0))
        for name, labels, ok in checks:
            values = _matching(results.get(name, []), **labels)
            if len(values) != 1 or not ok(values[0]):
                problems.append(f"{name}{labels}: {values}")
        # The composed-model alert is pending (for: 2m) for the route missing one, and for
        # no other: the idle deployments' gauges, never refreshed, do not count.
        missing = {
            (r["metric"]["route"], r["metric"]["model"], r["metric"]["alertstate"])
            for r in prometheus.query('ALERTS{alertname="MarqueeRouteDependencyMissing"}')
        }
        if missing != {(MISSING_RETRIEVAL_ROUTE, ABSENT_MODEL, "pending")}:
            problems.append(f"MarqueeRouteDependencyMissing: {sorted(missing)}")
        return problems

    last: list[str] = []

    def settled() -> bool:
        last[:] = unmet()
        return not last

    try:
        prometheus.wait_for("every recording rule to have series and sensible values", settled, timeout=30)
    except pytest.fail.Exception:
        pytest.fail("still unmet after 30 s:\n" + "\n".join(last))
    assert "marquee_moderation_worker_batches_total" in {
        r["metric"]["__name__"] for r in prometheus.query('{job="marquee-moderation-queue"}')
    }

    # Every rule, recording and alerting, was evaluated without an error.
    def all_evaluated() -> list | None:
        evaluated = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
        return evaluated if all(rule["health"] != "unknown" for rule in evaluated) else None

    evaluated = prometheus.wait_for("every rule to be evaluated", all_evaluated)
    loaded = {group["name"] for group in prometheus.api("rules")["groups"]}
    shipped = {
        group["name"]
        for path in (rules.RECORDING_FILE, rules.ALERT_FILES["cpu"])
        for group in yaml.safe_load(path.read_text())["groups"]
    }
    assert loaded == shipped
    assert {rule["name"]: rule.get("lastError") for rule in evaluated if rule["health"] != "ok"} == {}
    assert time.monotonic() - started < 60


def _has_a_number(result: list[dict]) -> bool:
    """Some series with a finite value: a ratio of two zero rates (NaN) is not data."""
    return any(math.isfinite(float(r["value"][1])) for r in result)


def test_every_dashboard_query_returns_data_after_real_traffic(after_traffic):
    """Every panel's PromQL, as Grafana sends it with each variable at "All", from the
    committed deploy/grafana/*.json: an error fails at once; no series with a finite value
    fails once the rules have had time to evaluate. Each variable lists some values."""
    prometheus = after_traffic.prometheus
    committed = sorted(dashboards.GRAFANA_DIR.glob("*.json"))
    assert len(committed) == 4
    queries = []
    for path in committed:
        dashboard = json.loads(path.read_text())
        for panel, ref, expr in dashboards.queries_as_run(dashboard):
            queries.append((f"{dashboard['title']} / {panel} / {ref}", expr))
        for variable in dashboard["templating"]["list"]:
            if variable["type"] != "query":
                continue
            match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["definition"])
            selector = match.group(1).replace("$route", dashboards.ALL)
            values = prometheus.api(f"label/{match.group(2)}/values", **{"match[]": selector})
            assert values, f"{dashboard['title']}: variable {variable['name']} lists nothing ({selector})"

    errors, empty = [], []

    def answered() -> bool:
        errors.clear()
        empty.clear()
        for where, expr in queries:
            result, error = prometheus.try_query(expr)
            if error:
                errors.append(f"{where}: {error}\n    {expr}")
            elif not _has_a_number(result):
                empty.append(f"{where}: {'NaN only' if result else 'no series'}\n    {expr}")
        return bool(errors) or not empty

    try:
        prometheus.wait_for("every dashboard query to return data", answered, timeout=30)
    except pytest.fail.Exception:
        assert prometheus.process.poll() is None, prometheus.log_path.read_text()[-3000:]
    report = [f"refused by Prometheus: {line}" for line in errors] + [f"without data: {line}" for line in empty]
    assert not report, f"{len(report)} of {len(queries)} dashboard queries failed:\n" + "\n".join(report)
