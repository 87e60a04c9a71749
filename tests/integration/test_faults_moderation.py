"""Faults under the moderation queue, against a real tritonserver (the stand-in route of
tests/fixtures_moderation_queue.py), a real SQLite file and a real redis-server:

- a worker SIGKILLed at each step boundary of a batch (after the claim, after the route
  answered, just before the decisions are written), then a drain: every item ends decided
  exactly once or quarantined, with exact counts, and the killed batches cost an attempt;
- Redis killed outright and restarted mid-drain, with the persistence the README
  recommends (`appendonly yes`, `appendfsync always`): the worker rides out the outage and
  nothing enqueued is lost or decided twice;
- the disk under the SQLite queue fills up (a 1 MiB tmpfs): enqueue fails loudly, and
  every item enqueued before is still there, intact.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from marquee.moderation.queue import ErrorKind, QueueError, RetryPolicy, Status, open_queue
from tests.fixtures_moderation_queue import expected_decision, redis_server_binary, worker_command

pytestmark = pytest.mark.integration

N_ITEMS = 48
EMPTY_AT = (3, 30)  # the route answers "error" (input) for empty texts: quarantined on the first attempt
BATCH = 8
LEASE_S = 1.5
DRAIN = ("--batch-size", str(BATCH), "--lease", str(LEASE_S), "--max-attempts", "5", "--backoff", "0.1",
         "--timeout", "1", "--unavailable-backoff", "0.2", "--exit-when-empty")  # fmt: skip
REPO_ROOT = Path(__file__).resolve().parents[2]
KILLED = -signal.SIGKILL


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "200"}


def _texts(count: int = N_ITEMS, hold_at: int | None = None) -> list[str]:
    texts = []
    for i in range(count):
        text = f"fault post {i}" + (" darn" if i % 5 == 0 else "") + (" HOLD" if i == hold_at else "")
        texts.append("" if i in EMPTY_AT else text)
    return texts


@pytest.fixture
def route(stand_in_all_switches_off):
    return stand_in_all_switches_off


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "queue.sqlite")
    import redis

    url = request.getfixturevalue("redis_server_url").rsplit("/", 1)[0] + "/2"
    redis.Redis.from_url(url).flushdb()
    return url


def _drain(store: str, grpc_url: str, log_path: Path, name: str = "drain") -> str:
    done = subprocess.run(worker_command(store, grpc_url, name, *DRAIN), env=_env(), capture_output=True, text=True,
                          timeout=180)  # fmt: skip
    log_path.write_text(done.stdout + done.stderr)
    assert done.returncode == 0, f"drain worker exited {done.returncode}:\n{(done.stdout + done.stderr)[-3000:]}"
    return done.stdout


def _assert_every_item_decided_once_or_quarantined(store: str, ids: list[str], texts: list[str]) -> dict:
    with open_queue(store) as queue:
        counts = queue.counts()
        decisions = queue.decisions()
        quarantine = {entry.item_id: entry for entry in queue.quarantined()}
        attempts = {item_id: queue.item(item_id).attempts for item_id in ids}
    by_item = {d.item_id: d for d in decisions}
    assert len(decisions) == len(by_item), "an item was decided twice"
    assert set(by_item) | set(quarantine) == set(ids) and not set(by_item) & set(quarantine)
    assert set(quarantine) == {ids[i] for i in EMPTY_AT}
    assert all(quarantine[ids[i]].error_kind is ErrorKind.INPUT for i in EMPTY_AT)
    assert counts[Status.DECIDED] == len(ids) - len(EMPTY_AT) and counts[Status.QUARANTINED] == len(EMPTY_AT)
    assert counts[Status.PENDING] == counts[Status.LEASED] == 0
    for index, item_id in enumerate(ids):
        if item_id in by_item:
            assert by_item[item_id].decision == expected_decision(texts[index])
    return {"by_item": by_item, "attempts": attempts}


# -- a worker killed at each step boundary --------------------------------------------------


def _crash(store: str, grpc_url: str, boundary: str, batch: int, name: str) -> list[list[str]]:
    """Run a worker that SIGKILLs itself at `boundary` of its `batch`-th batch; the ids of
    each batch it claimed."""
    command = [sys.executable, "-m", "tests.crashing_worker", store, grpc_url, boundary, str(batch),
               "--batch-size", str(BATCH), "--lease", str(LEASE_S), "--name", name]  # fmt: skip
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == KILLED, f"{boundary}: exited {done.returncode}, not by SIGKILL:\n{output[-3000:]}"
    return [re.findall(r"'([^']+)'", line) for line in done.stdout.splitlines() if line.startswith("claimed batch")]


def test_a_worker_killed_at_each_step_boundary_loses_nothing_and_decides_nothing_twice(route, store, tmp_path):
    texts = _texts()
    with open_queue(store, RetryPolicy(max_attempts=5, backoff_s=0.1)) as queue:
        ids = queue.enqueue("text", texts)
    url = route.server.grpc_url
    plan = [("after_claim", 1), ("after_model_call", 1), ("before_decision_write", 2)]
    claimed: dict[str, list[list[str]]] = {}
    for number, (boundary, batch) in enumerate(plan, start=1):
        claimed[boundary] = _crash(store, url, boundary, batch, name=f"crashing-{number}")
        assert len(claimed[boundary]) == batch, claimed[boundary]
        time.sleep(LEASE_S + 0.2)  # the killed worker's lease runs out; the next worker may take its batch
    _drain(store, url, tmp_path / "drain.log")
    final = _assert_every_item_decided_once_or_quarantined(store, ids, texts)
    by_worker: dict[str, set[str]] = {}
    for item_id, decision in final["by_item"].items():
        by_worker.setdefault(decision.worker, set()).add(item_id)
    # Killed before anything was written: the first two workers decided nothing; the third
    # decided exactly its first batch (bad input quarantined instead), nothing of its second.
    assert "crashing-1" not in by_worker and "crashing-2" not in by_worker
    first_batch_of_third = set(claimed["before_decision_write"][0]) - {ids[i] for i in EMPTY_AT}
    assert by_worker.get("crashing-3", set()) == first_batch_of_third
    for boundary, batches in claimed.items():
        killed = set(batches[-1])
        assert all(final["attempts"][item_id] >= 2 for item_id in killed), f"{boundary}: the kill cost no attempt"
        assert not killed & by_worker.get(f"crashing-{1 + list(claimed).index(boundary)}", set())


# -- Redis killed and restarted mid-drain ----------------------------------------------------

# What the README recommends for a production queue: every write is in the append-only
# file before Redis answers, so a crash loses nothing a client was told was written.
PERSISTENT_REDIS = ("--appendonly", "yes", "--appendfsync", "always", "--save", "")


class PersistentRedis:
    def __init__(self, workdir: Path):
        binary = redis_server_binary()
        if binary is None:
            pytest.skip("no redis-server on PATH")
        self.binary, self.workdir = binary, workdir
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
                   *PERSISTENT_REDIS]  # fmt: skip
        log = (self.workdir / "redis.log").open("a")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis(port=self.port).ping()
                return
            except redis.exceptions.RedisError:  # refused, or still loading the append-only file
                if self.process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"redis-server did not start:\n{(self.workdir / 'redis.log').read_text()}")
                time.sleep(0.05)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)  # a crash: no shutdown save, no goodbye
        self.process.wait()


@pytest.fixture
def persistent_redis(tmp_path):
    server = PersistentRedis(tmp_path)
    server.start()
    yield server
    if server.process.poll() is None:
        server.process.terminate()
        server.process.wait(timeout=10)


def test_redis_killed_and_restarted_mid_drain_loses_nothing(route, persistent_redis, tmp_path):
    hold_at = 20
    texts = _texts(hold_at=hold_at)
    with open_queue(persistent_redis.url) as queue:
        ids = queue.enqueue("text", texts)
    route.switch("hold", True)
    log_path = tmp_path / "worker.log"
    # The held request must outlast the kill, so this worker waits longer for the route.
    patient = [*DRAIN[:2], "--lease", "3", *DRAIN[4:8], "--timeout", "2", *DRAIN[10:]]
    with log_path.open("w") as log:
        worker = subprocess.Popen(worker_command(persistent_redis.url, route.server.grpc_url, "survivor", *patient),
                                  env=_env(), stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        route.wait_for("holding")  # mid-drain: a batch is in flight, earlier ones decided
        persistent_redis.kill()
        route.switch("hold", False)  # the route answers while Redis is down: the write must fail
        time.sleep(2.0)
        assert worker.poll() is None, f"the worker died with Redis:\n{log_path.read_text()[-3000:]}"
        persistent_redis.start()
        worker.wait(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
    output = log_path.read_text()
    assert worker.returncode == 0, f"worker exited {worker.returncode}:\n{output[-3000:]}"
    assert "queue unavailable" in output
    final = _assert_every_item_decided_once_or_quarantined(persistent_redis.url, ids, texts)
    assert final["attempts"][ids[hold_at]] >= 2, "the batch in flight during the outage was not retried"


# -- the disk under the SQLite queue fills up -------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path):
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
    yield mountpoint
    subprocess.run(["umount", str(mountpoint)], check=True)


def test_a_full_disk_fails_enqueue_loudly_and_keeps_what_was_enqueued(tiny_disk):
    store = str(tiny_disk / "queue.sqlite")
    kept: dict[str, str] = {}
    error = None
    with open_queue(store) as queue:
        for batch in range(1000):
            payloads = [f"batch {batch} item {i} {os.urandom(3000).hex()}" for i in range(4)]
            try:
                ids = queue.enqueue("text", payloads)
            except QueueError as refused:
                error = refused
                break
            kept.update(zip(ids, payloads, strict=True))
        assert error is not None, "1 MiB never filled up"
        assert "disk" in str(error).lower() and store in str(error), str(error)
        assert kept, "nothing was enqueued before the disk filled"
        counts = queue.counts()
        assert counts[Status.PENDING] == len(kept)
        for item_id, payload in kept.items():
            assert queue.item(item_id).text == payload
    import sqlite3

    connection = sqlite3.connect(store)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        connection.close()
