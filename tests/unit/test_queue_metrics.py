"""Queue metrics (marquee/moderation/metrics.py) read from a real store, SQLite file and
redis-server alike: exact values after enqueue, lease, decide, fail and quarantine, read
back through prometheus_client's registry as Prometheus scrapes them; then the endpoint,
the worker's counters and `marquee moderation metrics` as its own process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

pytest.importorskip("prometheus_client", reason="queue metrics need prometheus_client (the `worker` extra)")

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from marquee.moderation import metrics  # noqa: E402
from marquee.moderation.queue import ErrorKind, RetryPolicy, Status, Verdict  # noqa: E402
from marquee.moderation.queue.sqlite import SqliteQueue  # noqa: E402
from marquee.moderation.worker import Worker, WorkerSettings  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_000_000.0
RETRY = RetryPolicy(max_attempts=3, backoff_s=30.0)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "redis"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def open_store(backend, tmp_path, clock, request):
    """A function that opens the test's store (each call a new connection, as a scrape
    thread makes its own), and the first connection, the one the test writes through."""
    if backend == "sqlite":

        def opener():
            return SqliteQueue(tmp_path / "queue.sqlite", RETRY, clock=clock)

    else:
        import redis

        from marquee.moderation.redis_queue import RedisQueue

        url = request.getfixturevalue("redis_server_url")
        prefix = f"test:{uuid.uuid4().hex}"

        def opener():
            return RedisQueue(redis.Redis.from_url(url), prefix=prefix, retry=RETRY, clock=clock)

    return opener


@pytest.fixture
def queue(open_store):
    store = open_store()
    yield store
    store.close()


@pytest.fixture
def registry(open_store):
    return metrics.registry_for(open_store)


def _value(registry, name: str, **labels) -> float | None:
    return registry.get_sample_value(name, labels)


def _queue_values(registry) -> dict:
    return {
        "depth": _value(registry, metrics.DEPTH),
        "lag": _value(registry, metrics.OLDEST_PENDING_AGE),
        "leases": _value(registry, metrics.LEASES_IN_FLIGHT),
        "quarantined": {k.value: _value(registry, metrics.QUARANTINED, error_kind=k.value) for k in ErrorKind},
        "decisions": {d: _value(registry, metrics.DECISIONS_TOTAL, decision=d) for d in ("allow", "review", "block")},
        "backlog": _value(registry, metrics.REVIEW_BACKLOG),
    }


def _quarantined(**kinds: int) -> dict:
    return {k.value: float(kinds.get(k.value, 0)) for k in ErrorKind}


def _decided(allow=0, review=0, block=0) -> dict:
    return {"allow": float(allow), "review": float(review), "block": float(block)}


def test_empty_queue_exports_every_series_at_zero(registry, backend):
    assert _queue_values(registry) == {
        "depth": 0.0,
        "lag": 0.0,
        "leases": 0.0,
        "quarantined": _quarantined(),
        "decisions": _decided(),
        "backlog": 0.0,
    }
    assert _value(registry, metrics.STORE_UP, backend=backend) == 1.0
    assert _value(registry, metrics.READ_DURATION) >= 0.0


def test_metrics_follow_enqueue_lease_decide_fail_and_quarantine_exactly(registry, queue, clock):
    ids = queue.enqueue("text", ["a", "b", "c", "d", "e"], ids=["a", "b", "c", "d", "e"])
    clock.now = T0 + 10
    assert _queue_values(registry) | {"quarantined": None, "decisions": None} == {
        "depth": 5.0,
        "lag": 10.0,
        "leases": 0.0,
        "quarantined": None,
        "decisions": None,
        "backlog": 0.0,
    }

    assert [item.id for item in queue.claim("w1", 2, lease_s=60)] == ids[:2]
    values = _queue_values(registry)
    assert (values["depth"], values["leases"], values["lag"]) == (3.0, 2.0, 10.0)

    assert queue.decide([Verdict("a", "review", "{}"), Verdict("b", "block", "{}")], "w1") == ["a", "b"]
    values = _queue_values(registry)
    assert values["decisions"] == _decided(review=1, block=1)
    assert (values["backlog"], values["leases"], values["depth"]) == (1.0, 0.0, 3.0)

    assert [item.id for item in queue.claim("w1", 2, lease_s=60)] == ["c", "d"]
    queue.fail("c", "w1", "empty text", ErrorKind.INPUT)  # quarantined at once
    queue.fail("d", "w1", "classifier late", ErrorKind.MODEL)  # back to pending, 30 s backoff
    queue.enqueue("text", ["f"], ids=["f"])  # enqueued at T0 + 10: age 0
    values = _queue_values(registry)
    assert values["quarantined"] == _quarantined(input=1)
    # d waits out its backoff and still counts, with its first enqueue time: the lag is d's.
    assert (values["depth"], values["leases"], values["lag"]) == (3.0, 0.0, 10.0)

    assert [item.id for item in queue.claim("w1", 1, lease_s=60)] == ["e"]  # d is not due yet
    queue.decide([Verdict("e", "allow", "{}")], "w1")
    clock.now = T0 + 25
    values = _queue_values(registry)
    assert values == {
        "depth": 2.0,  # d (in backoff), f
        "lag": 25.0,  # d, enqueued at T0, alone outside the line (Redis: in the delayed set)
        "leases": 0.0,
        "quarantined": _quarantined(input=1),
        "decisions": _decided(allow=1, review=1, block=1),
        "backlog": 1.0,
    }

    clock.now = T0 + 60  # d is due again; it and f are leased, then d exhausts its attempts
    assert sorted(item.id for item in queue.claim("w1", 5, lease_s=60)) == ["d", "f"]
    values = _queue_values(registry)
    assert (values["depth"], values["leases"], values["lag"]) == (0.0, 2.0, 0.0)
    for attempt in range(2, RETRY.max_attempts + 1):
        queue.fail("d", "w1", "classifier late", ErrorKind.MODEL)
        if attempt < RETRY.max_attempts:
            clock.now += 1_000
            assert [item.id for item in queue.claim("w1", 1, lease_s=60)] == ["d"]
    assert queue.status("d") is Status.QUARANTINED
    values = _queue_values(registry)
    assert values["quarantined"] == _quarantined(input=1, model=1)
    assert (values["depth"], values["leases"]) == (0.0, 1.0)  # f still leased

    assert sorted(queue.replay()) == ["c", "d"]
    values = _queue_values(registry)
    assert values["quarantined"] == _quarantined()
    assert values["depth"] == 2.0
    assert values["lag"] == clock.now - T0  # replayed items keep their first enqueue time


def test_decisions_are_a_counter_and_the_exposition_has_the_documented_types(registry, queue):
    queue.enqueue("text", ["x"], ids=["x"])
    queue.claim("w1", 1, lease_s=60)
    queue.decide([Verdict("x", "allow", "{}")], "w1")
    from prometheus_client import generate_latest

    families = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert families["marquee_moderation_queue_decisions"].type == "counter"
    for name in (metrics.DEPTH, metrics.OLDEST_PENDING_AGE, metrics.LEASES_IN_FLIGHT, metrics.QUARANTINED):
        assert families[name].type == "gauge", name
    samples = {
        (s.name, s.labels.get("decision")): s.value for s in families["marquee_moderation_queue_decisions"].samples
    }
    assert samples == {
        (metrics.DECISIONS_TOTAL, "allow"): 1.0,
        (metrics.DECISIONS_TOTAL, "review"): 0.0,
        (metrics.DECISIONS_TOTAL, "block"): 0.0,
    }
    # No process or GC series: only the queue's (the endpoint is the queue's own).
    assert all(name.startswith("marquee_moderation_") for name in families)


def test_a_store_that_cannot_be_read_answers_store_up_zero_and_recovers(tmp_path):
    attempts = []

    def opener():
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("disk on fire")
        return SqliteQueue(tmp_path / "q.sqlite")

    from prometheus_client import generate_latest

    registry = metrics.registry_for(opener)
    first = _families(generate_latest(registry).decode())  # one scrape
    assert first[(metrics.STORE_UP, "backend=unknown")] == 0.0
    assert (metrics.DEPTH, "") not in first
    second = _families(generate_latest(registry).decode())  # the next scrape opens the store again
    assert second[(metrics.STORE_UP, "backend=sqlite")] == 1.0
    assert second[(metrics.DEPTH, "")] == 0.0


def test_redis_that_is_down_answers_store_up_zero():
    import redis

    from marquee.moderation.redis_queue import RedisQueue

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here
    registry = metrics.registry_for(lambda: RedisQueue(redis.Redis(port=port, socket_connect_timeout=0.5)))
    assert _value(registry, metrics.STORE_UP, backend="unknown") == 0.0


def test_redis_decision_counts_of_a_store_from_before_the_counter_are_rebuilt(redis_server_url, clock):
    import redis

    from marquee.moderation.redis_queue import RedisQueue

    client = redis.Redis.from_url(redis_server_url)
    queue = RedisQueue(client, prefix=f"test:{uuid.uuid4().hex}", clock=clock)
    queue.enqueue("text", ["x", "y", "z"], ids=["x", "y", "z"])
    queue.claim("w1", 3, lease_s=60)
    queue.decide([Verdict("x", "review", "{}"), Verdict("y", "review", "{}")], "w1")
    client.delete(f"{queue.prefix}:decision-counts")  # as a store written before the counter existed
    queue.decide([Verdict("z", "block", "{}")], "w1")  # the counter now holds only this one
    assert queue.snapshot().decisions_by_decision == {"allow": 0, "review": 2, "block": 1}
    assert queue.snapshot().decisions_by_decision == {"allow": 0, "review": 2, "block": 1}  # stable
    queue.close()


def test_redis_lag_counts_an_entry_delivered_to_a_worker_that_died_before_leasing_it(redis_server_url, clock):
    import redis

    from marquee.moderation.redis_queue import GROUP, RedisQueue

    client = redis.Redis.from_url(redis_server_url)
    queue = RedisQueue(client, prefix=f"test:{uuid.uuid4().hex}", clock=clock)
    queue.enqueue("text", ["old"], ids=["old"])
    clock.now = T0 + 5
    queue.enqueue("text", ["new"], ids=["new"])
    # Read the first entry as a worker does, and die before the lease script runs.
    client.xreadgroup(GROUP, "dead", {f"{queue.prefix}:stream": ">"}, count=1)
    clock.now = T0 + 40
    snapshot = queue.snapshot()
    assert queue.status("old") is Status.PENDING
    assert (snapshot.counts[Status.PENDING], snapshot.oldest_pending_age_s) == (2, 40.0)
    queue.close()


def test_endpoint_binds_loopback_and_serves_the_text_format(tmp_path):
    queue = SqliteQueue(tmp_path / "q.sqlite")
    queue.enqueue("text", ["a", "b"])
    registry = metrics.registry_for(lambda: SqliteQueue(tmp_path / "q.sqlite"))
    endpoint = metrics.serve(registry, 0)
    try:
        assert endpoint.address == "127.0.0.1"
        assert endpoint.url == f"http://127.0.0.1:{endpoint.port}/metrics"
        for _ in range(2):  # the collector's connection is reused by the next scrape
            with urllib.request.urlopen(endpoint.url, timeout=10) as reply:
                body = reply.read().decode()
            assert "\nmarquee_moderation_queue_depth 2.0\n" in body
    finally:
        endpoint.stop()
        queue.close()


def test_endpoint_rejects_an_address_that_is_not_an_ip(tmp_path):
    registry = metrics.registry_for(lambda: SqliteQueue(tmp_path / "q.sqlite"))
    with pytest.raises(ValueError, match="expected an IP address"):
        metrics.serve(registry, 0, "example.invalid")


class _Route:
    def moderate(self, kind, payloads):
        from clients.moderation import ModerationResult

        out = []
        for payload in payloads:
            decision = "error" if not payload else "review" if b"hmm" in payload else "allow"
            audit = {"decision": decision, **({"error": "empty", "error_kind": "input"} if not payload else {})}
            out.append(ModerationResult.from_wire("t", 0, decision, json.dumps(audit)))
        return out


def test_worker_counters_count_its_batches_and_outcomes(tmp_path):
    path = tmp_path / "q.sqlite"
    queue = SqliteQueue(path)
    queue.enqueue("text", ["fine", "hmm", ""])
    worker = Worker(queue, _Route(), WorkerSettings(batch_size=2, exit_when_empty=True, name="w"))
    registry = metrics.registry_for(lambda: SqliteQueue(path), worker)
    assert _value(registry, metrics.WORKER_BATCHES) == 0.0
    worker.run(handle_signals=False)
    assert _value(registry, metrics.WORKER_BATCHES) == 2.0
    outcomes = {o: _value(registry, metrics.WORKER_ITEMS, outcome=o) for o in metrics.WORKER_OUTCOMES}
    assert outcomes == {"decided": 2.0, "retried": 0.0, "quarantined": 1.0, "stale": 0.0}
    assert _value(registry, metrics.REVIEW_BACKLOG) == 1.0
    assert _value(registry, metrics.QUARANTINED, error_kind="input") == 1.0
    queue.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _scrape(url: str, deadline_s: float = 30.0, process: subprocess.Popen | None = None) -> str:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                return reply.read().decode()
        except OSError:
            if (process is not None and process.poll() is not None) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _families(text: str) -> dict[tuple[str, str], float]:
    return {
        (sample.name, ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.slow
def test_metrics_command_serves_the_store_until_sigterm(tmp_path):
    store = tmp_path / "q.sqlite"
    with SqliteQueue(store) as queue:
        queue.enqueue("text", ["a", "b", "c"], ids=["a", "b", "c"])
        queue.claim("w1", 1, lease_s=60)
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    command = [sys.executable, "-m", "marquee.moderation.cli", "moderation", "metrics", "--store", str(store)]
    process = subprocess.Popen(
        [*command, "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        values = _families(_scrape(f"http://127.0.0.1:{port}/metrics", process=process))
        assert values[(metrics.DEPTH, "")] == 2.0
        assert values[(metrics.LEASES_IN_FLIGHT, "")] == 1.0
        assert values[(metrics.STORE_UP, "backend=sqlite")] == 1.0
        with SqliteQueue(store) as queue:  # the endpoint reads the store live, not a copy
            queue.decide([Verdict("a", "review", "{}")], "w1")
        values = _families(_scrape(f"http://127.0.0.1:{port}/metrics"))
        assert values[(metrics.REVIEW_BACKLOG, "")] == 1.0
        assert values[(metrics.LEASES_IN_FLIGHT, "")] == 0.0
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    assert f"moderation metrics on http://127.0.0.1:{port}/metrics" in output
