"""Moderation workers as real processes against a real tritonserver: kill one mid-batch,
stop one gracefully, take the server away; every item must end decided or quarantined,
none twice, none lost.

The server answers `moderate_text` with the stand-in described in
tests/fixtures_moderation_queue.py (deterministic decisions, FAIL and HOLD switches).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from marquee.moderation.queue import RetryPolicy, Status, open_queue
from marquee.moderation.queue.sqlite import SqliteQueue
from marquee.server import TritonServer
from tests.fixtures_moderation_queue import expected_decision, start_stand_in, worker_command

pytestmark = pytest.mark.integration

N_ITEMS = 300
FAIL_AT = (20, 90, 170, 230, 280)  # the stand-in fails any request holding these while `fail` is on
EMPTY_AT = (45, 260)  # the route answers "error" for empty texts: quarantined once attempts are spent
HOLD_AT = 150  # the stand-in blocks on this one while `hold` is on: the kill lands mid-batch
FAST_RETRIES = ("--backoff", "0.1", "--max-attempts", "3", "--timeout", "60")


def _texts() -> list[str]:
    texts = []
    for i in range(N_ITEMS):
        text = f"post {i}" + (" darn" if i % 7 == 0 else "") + (" hmm" if i % 11 == 0 else "")
        if i in FAIL_AT:
            text += " FAIL"
        if i == HOLD_AT:
            text += " HOLD"
        texts.append("" if i in EMPTY_AT else text)
    return texts


def _spawn(command: list[str], log_path: Path) -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    with log_path.open("a") as log_file:
        return subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)


def _finish(process: subprocess.Popen, log_path: Path, timeout: float = 120) -> None:
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"worker did not finish within {timeout}s; log:\n{log_path.read_text()[-4000:]}")
    assert process.returncode == 0, f"worker exited {process.returncode}; log:\n{log_path.read_text()[-4000:]}"


def _cli(*args: str) -> str:
    env = {**os.environ, "COLUMNS": "250", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [sys.executable, "-m", "marquee.moderation.cli", *args], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path) -> str:
    """Where the queue lives: a SQLite file, or a Redis database emptied for the test."""
    if request.param == "sqlite":
        return str(tmp_path / "queue.sqlite")
    import redis

    url = request.getfixturevalue("redis_server_url").rsplit("/", 1)[0] + "/1"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
def route(stand_in_route):
    for flag in ("fail", "hold", "holding"):
        stand_in_route.switch(flag, False)
    yield stand_in_route
    for flag in ("fail", "hold", "holding"):
        stand_in_route.switch(flag, False)


def test_killed_worker_loses_nothing_and_decides_nothing_twice(route, store, tmp_path):
    log_path = tmp_path / "workers.log"
    texts = _texts()
    with open_queue(store) as queue:
        ids = queue.enqueue("text", texts)
    text_of = dict(zip(ids, texts, strict=True))
    route.switch("fail", True)
    route.switch("hold", True)
    url = route.server.grpc_url

    # Worker 1 is killed outright while its request holding HOLD_AT is in flight.
    first = _spawn(worker_command(store, url, "w1", "--lease", "2", *FAST_RETRIES), log_path)
    route.wait_for("holding", timeout=60)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    with open_queue(store) as queue:
        stranded = {item_id for item_id, owner in queue.leased().items() if owner == "w1"}
        decided_by_w1 = sum(d.worker == "w1" for d in queue.decisions())
    assert ids[HOLD_AT] in stranded, "the kill must land while worker 1 holds a leased batch"
    assert decided_by_w1 > 0, "worker 1 should have decided earlier batches before the kill"

    # Worker 2 reclaims the stranded batch once its 2 s lease expires, and drains the queue.
    route.switch("hold", False)
    second = _spawn(worker_command(store, url, "w2", "--lease", "2", "--exit-when-empty", *FAST_RETRIES), log_path)
    _finish(second, log_path)

    with open_queue(store) as queue:
        counts = queue.counts()
        decisions = queue.decisions()
        quarantine = {entry.item_id: entry for entry in queue.quarantined()}
        held_attempts = queue.item(ids[HOLD_AT]).attempts
    assert counts[Status.PENDING] == counts[Status.LEASED] == 0
    assert counts[Status.DECIDED] + counts[Status.QUARANTINED] == N_ITEMS
    assert len(decisions) == len({d.item_id for d in decisions}) == counts[Status.DECIDED] == N_ITEMS - 7
    assert all(d.decision == expected_decision(text_of[d.item_id]) for d in decisions)
    assert {d.worker for d in decisions} == {"w1", "w2"}

    by_item = {d.item_id: d for d in decisions}
    for item_id in stranded - set(quarantine):
        assert by_item[item_id].worker == "w2"
    assert held_attempts == 2, "the held item was claimed by w1, then reclaimed by w2"

    assert set(quarantine) == {ids[i] for i in FAIL_AT + EMPTY_AT}
    for i in FAIL_AT:
        entry = quarantine[ids[i]]
        assert "stand-in classifier crashed on a FAIL text" in entry.reason and entry.attempts == 3
    for i in EMPTY_AT:
        entry = quarantine[ids[i]]
        assert "route answered error" in entry.reason and "is empty" in entry.reason and entry.attempts == 3

    # The operator lists the quarantine, fixes the model, replays the FAIL items.
    listing = _cli("quarantine", "list", "--store", store)
    assert all(ids[i] in listing for i in FAIL_AT + EMPTY_AT) and "crashed on a FAIL text" in listing
    route.switch("fail", False)
    replayed = _cli("quarantine", "replay", *[ids[i] for i in FAIL_AT], "--store", store)
    assert f"replayed {len(FAIL_AT)} item(s)" in replayed
    third = _spawn(worker_command(store, url, "w3", "--exit-when-empty", *FAST_RETRIES), log_path)
    _finish(third, log_path)

    with open_queue(store) as queue:
        counts = queue.counts()
        for i in FAIL_AT:
            decision = queue.decision(ids[i])
            assert (decision.decision, decision.worker) == (expected_decision(texts[i]), "w3")
        assert {entry.item_id for entry in queue.quarantined()} == {ids[i] for i in EMPTY_AT}
    assert counts[Status.DECIDED] == N_ITEMS - len(EMPTY_AT) and counts[Status.QUARANTINED] == len(EMPTY_AT)


def test_sigterm_finishes_the_batch_in_hand_and_leaves_nothing_leased(route, tmp_path):
    db, log_path = tmp_path / "queue.sqlite", tmp_path / "worker.log"
    texts = [f"item {i}" + (" HOLD" if i == 10 else "") for i in range(40)]
    with SqliteQueue(db) as queue:
        ids = queue.enqueue("text", texts)
    route.switch("hold", True)
    worker = _spawn(worker_command(db, route.server.grpc_url, "w1", "--batch-size", "8", "--lease", "30"), log_path)
    route.wait_for("holding", timeout=60)
    worker.send_signal(signal.SIGTERM)
    time.sleep(0.5)  # the signal arrives while the request is still in flight
    route.switch("hold", False)
    _finish(worker, log_path, timeout=60)

    with SqliteQueue(db) as queue:
        counts = queue.counts()
        assert queue.decision(ids[10]) is not None, "the batch in hand must be finished"
    assert counts[Status.LEASED] == 0
    assert counts[Status.DECIDED] == 16, "two batches of 8: the one before the signal and the one in hand"
    assert counts[Status.PENDING] == 24
    assert "SIGTERM received" in log_path.read_text()


def test_server_going_away_mid_run_loses_no_item(tmp_path):
    route = start_stand_in(tmp_path / "server")
    db, log_path = tmp_path / "queue.sqlite", tmp_path / "worker.log"
    texts = [f"clip {i}" + (" darn" if i % 5 == 0 else "") + (" HOLD" if i == 30 else "") for i in range(80)]
    with SqliteQueue(db, RetryPolicy()) as queue:
        ids = queue.enqueue("text", texts)
    try:
        route.switch("hold", True)
        worker = _spawn(
            worker_command(
                db,
                route.server.grpc_url,
                "w1",
                "--batch-size",
                "4",
                "--max-attempts",
                "2",
                "--backoff",
                "0.1",
                "--timeout",
                "60",
                "--unavailable-backoff",
                "0.3",
                "--exit-when-empty",
            ),
            log_path,
        )
        route.wait_for("holding", timeout=60)
        route.server.process.kill()  # the server crashes with a request in flight
        route.server.process.wait()
        time.sleep(1.0)  # long enough for two attempts of some items (backoffs 0.1 s and 0.3 s)
        route.switch("hold", False)
        restarted = TritonServer(route.server.repository, route.server.ports, log_path=tmp_path / "restarted.log")
        restarted.start(timeout=120)
        _finish(worker, log_path)

        with SqliteQueue(db) as queue:
            after_outage = queue.counts()
            quarantine = queue.quarantined()
            assert after_outage[Status.PENDING] == after_outage[Status.LEASED] == 0
            assert after_outage[Status.DECIDED] + after_outage[Status.QUARANTINED] == len(ids)
            assert quarantine, "two attempts during a 1 s outage must quarantine some items"
            assert all("route unavailable" in entry.reason for entry in quarantine)
            assert len(queue.replay()) == len(quarantine)

        replay_worker = _spawn(
            worker_command(db, restarted.grpc_url, "w2", "--exit-when-empty", "--backoff", "0.1"), log_path
        )
        _finish(replay_worker, log_path)
        with SqliteQueue(db) as queue:
            decisions = queue.decisions()
            assert queue.counts()[Status.DECIDED] == len(ids)
        text_of = dict(zip(ids, texts, strict=True))
        assert sorted(d.item_id for d in decisions) == sorted(ids)
        assert all(d.decision == expected_decision(text_of[d.item_id]) for d in decisions)
    finally:
        route.server.stop()
        if "restarted" in locals():
            restarted.stop()


def _requests_served(route, model: str) -> int:
    import tritonclient.http as http

    with http.InferenceServerClient(route.server.http_url) as client:
        stats = client.get_inference_statistics(model)["model_stats"][0]
    return int(stats["inference_stats"]["success"]["count"])


def test_clients_keep_item_order_across_the_routes_per_request_limit(route):
    from clients.moderation import AsyncModerationClient, ModerationClient
    from marquee.specs.moderation_text import MAX_TEXTS

    texts = [f"t{i}" + (" darn" if i % 3 == 0 else "") for i in range(MAX_TEXTS + 44)]
    requests_before = _requests_served(route, "moderate_text")
    with ModerationClient(route.server.grpc_url) as client:
        results = client.moderate_text(texts)
        assert _requests_served(route, "moderate_text") - requests_before == 2, "300 texts: 256 + 44"
        (empty,) = client.moderate_text([""])
    assert [r.decision for r in results] == [expected_decision(t) for t in texts]
    assert results[0].scores["profanity"] == pytest.approx(0.97) and results[0].policy_version == "stand-in"
    assert empty.is_error and "is empty" in empty.error

    async def ask():
        async with AsyncModerationClient(route.server.grpc_url) as client:
            return await client.moderate_text(texts)

    import asyncio

    assert [r.decision for r in asyncio.run(ask())] == [r.decision for r in results]


def test_moderate_command_shows_decisions_or_queues_items(route, tmp_path):
    shown = _cli("moderate", "hello there", "darn it", "--url", route.server.grpc_url)
    assert "moderation decisions" in shown and "allow" in shown and "block" in shown and "profanity 0.97" in shown

    db = str(tmp_path / "queue.sqlite")
    queued = _cli("moderate", "--queue", "first", "second", "--store", db)
    with open_queue(db) as queue:
        ids = [item.id for item in queue.claim("peek", limit=10, lease_s=0.01)]
    assert len(ids) == 2 and all(item_id in queued for item_id in ids)
    assert "pending 0, leased 2" in _cli("moderation", "status", "--store", db)


def test_worker_drains_the_queue_through_the_real_text_route(text_triton, tmp_path):
    """The contract check: the same worker and client against the real `moderate_text`
    (lexical + MiniLM stages, policy), not the stand-in."""
    from clients.moderation import ModerationClient
    from marquee.moderation.queue.sqlite import SqliteQueue
    from marquee.moderation.worker import Worker, WorkerSettings

    texts = ["what a lovely trailer", "you are a fucking idiot", "see you at the premiere", "", "great soundtrack"] * 4
    with SqliteQueue(tmp_path / "queue.sqlite", RetryPolicy(max_attempts=2, backoff_s=0.0)) as queue:
        ids = queue.enqueue("text", texts)
        settings = WorkerSettings(batch_size=8, exit_when_empty=True, name="real")
        with ModerationClient(text_triton.grpc_url, timeout_s=60) as client:
            stats = Worker(queue, client, settings).run(handle_signals=False)
        decisions = {d.item_id: d for d in queue.decisions()}
        quarantine = {entry.item_id: entry for entry in queue.quarantined()}

    empty_ids = {item_id for item_id, text in zip(ids, texts, strict=True) if not text}
    assert set(quarantine) == empty_ids and len(decisions) == len(ids) - len(empty_ids)
    assert all("route answered error" in entry.reason for entry in quarantine.values())
    assert stats.decided == len(decisions)
    for item_id, text in zip(ids, texts, strict=True):
        if text:
            audit = decisions[item_id].audit_json
            assert audit["decision"] == decisions[item_id].decision and audit["policy_sha256"] and audit["stages"]
    profane = [decisions[i].decision for i, t in zip(ids, texts, strict=True) if "idiot" in t]
    clean = [decisions[i].decision for i, t in zip(ids, texts, strict=True) if t and "idiot" not in t]
    assert set(profane) <= {"review", "block"} and set(clean) == {"allow"}
