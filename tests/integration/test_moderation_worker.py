"""Moderation workers as real processes against a real tritonserver: kill one mid-batch,
stop one gracefully, take the server away, feed it bad input and failing models; every
item must end decided or quarantined, none twice, none lost. Bad input is quarantined on
its first attempt with error kind "input"; model and server faults are retried.

Most tests talk to the stand-in `moderate_text` described in
tests/fixtures_moderation_queue.py (deterministic decisions, error kinds, FAIL / REFUSE /
FLAKY / LEGACY / HOLD switches); the last ones to the real text and image routes.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from marquee.moderation.queue import ErrorKind, RetryPolicy, Status, open_queue
from marquee.moderation.queue.sqlite import SqliteQueue
from marquee.server import TritonServer
from marquee.specs.moderation_text import MAX_CHARS
from tests.fixtures_moderation_queue import SWITCHES, expected_decision, start_stand_in, worker_command

pytestmark = pytest.mark.integration

N_ITEMS = 300
FAIL_AT = (20, 90, 170, 230, 280)  # the stand-in fails any request holding these while `fail` is on
EMPTY_AT = (45, 260)  # the route answers "error" (error_kind input) for empty texts: quarantined at once
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
    for flag in SWITCHES:
        stand_in_route.switch(flag, False)
    yield stand_in_route
    for flag in SWITCHES:
        stand_in_route.switch(flag, False)


def _listed_kind(listing: str, item_id: str) -> str | None:
    """The `error kind` column of `item_id`'s row in `marquee quarantine list` output."""
    match = re.search(rf"│ {re.escape(item_id)}\s*│\s*(?:text|image)\s*│\s*(\w+)\s*│", listing)
    return match.group(1) if match else None


def _final_state(store: str, ids: list[str]) -> tuple[dict, dict, dict]:
    """(counts, decisions by item, quarantine entries by item), after checking that every
    item ended decided or quarantined, exactly once."""
    with open_queue(store) as queue:
        counts = queue.counts()
        decisions = queue.decisions()
        quarantine = {entry.item_id: entry for entry in queue.quarantined()}
    by_item = {d.item_id: d for d in decisions}
    assert counts[Status.PENDING] == counts[Status.LEASED] == 0, counts
    assert len(decisions) == len(by_item), "an item was decided twice"
    assert not set(by_item) & set(quarantine), "an item is both decided and quarantined"
    assert set(by_item) | set(quarantine) == set(ids), "an item was lost"
    assert counts[Status.DECIDED] + counts[Status.QUARANTINED] == len(ids), counts
    return counts, by_item, quarantine


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
        assert entry.error_kind is ErrorKind.SERVER
    for i in EMPTY_AT:
        entry = quarantine[ids[i]]
        assert "route answered error (input)" in entry.reason and "is empty" in entry.reason
        assert entry.attempts == 1 and entry.error_kind is ErrorKind.INPUT, "bad input is not retried"

    # The operator lists the quarantine, fixes the model, replays the FAIL items.
    listing = _cli("quarantine", "list", "--store", store)
    assert all(ids[i] in listing for i in FAIL_AT + EMPTY_AT) and "crashed on a FAIL text" in listing
    assert all(_listed_kind(listing, ids[i]) == "server" for i in FAIL_AT), listing
    assert all(_listed_kind(listing, ids[i]) == "input" for i in EMPTY_AT), listing
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


def test_bad_input_goes_to_quarantine_on_its_first_attempt_with_error_kind_input(route, store, tmp_path):
    log_path = tmp_path / "worker.log"
    texts = [f"comment {i}" + (" darn" if i % 4 == 0 else "") + (" hmm" if i % 6 == 0 else "") for i in range(30)]
    # Per-item "error" (input) from the route, and one text whose request the server refuses
    # as a whole (INVALID_ARGUMENT): the worker splits that batch and quarantines it alone.
    bad = {3: "", 11: " \t\n ", 17: "x" * (MAX_CHARS + 1), 26: "comment 26 REFUSE"}
    for index, text in bad.items():
        texts[index] = text
    route.switch("refuse", True)
    with open_queue(store) as queue:
        ids = queue.enqueue("text", texts)
    command = worker_command(store, route.server.grpc_url, "w1", "--batch-size", "8", "--exit-when-empty")
    _finish(_spawn([*command, *FAST_RETRIES], log_path), log_path)

    counts, decided, quarantine = _final_state(store, ids)
    assert set(quarantine) == {ids[i] for i in bad}
    for i in bad:
        entry = quarantine[ids[i]]
        assert (entry.attempts, entry.error_kind) == (1, ErrorKind.INPUT), f"text {i}: {entry}"
    assert "route answered error (input): text[" in quarantine[ids[3]].reason
    assert "is empty" in quarantine[ids[3]].reason and "only whitespace" in quarantine[ids[11]].reason
    assert f"has {MAX_CHARS + 1} characters; allowed: 1 to {MAX_CHARS}" in quarantine[ids[17]].reason
    refused = quarantine[ids[26]].reason
    assert refused.startswith("route refused the item: ") and "INVALID_ARGUMENT" in refused and "REFUSE" in refused
    good = [i for i in range(len(texts)) if i not in bad]
    assert counts[Status.DECIDED] == len(good) and set(decided) == {ids[i] for i in good}
    assert all(decided[ids[i]].decision == expected_decision(texts[i]) for i in good)
    assert f"{len(good)} decided, 0 retried, {len(bad)} quarantined ({len(bad)} bad input)" in log_path.read_text()

    listing = _cli("quarantine", "list", "--store", store)
    assert [_listed_kind(listing, ids[i]) for i in bad] == ["input"] * len(bad), listing


def test_model_fault_is_retried_until_attempts_are_spent_and_a_replay_decides_it(route, store, tmp_path):
    log_path = tmp_path / "worker.log"
    flaky_at = (2, 9)
    texts = [f"note {i}" + (" FLAKY" if i in flaky_at else "") + (" darn" if i % 3 == 0 else "") for i in range(12)]
    route.switch("flaky", True)  # FLAKY texts get decision "error" with error_kind "model"
    with open_queue(store) as queue:
        ids = queue.enqueue("text", texts)
    url = route.server.grpc_url
    _finish(_spawn(worker_command(store, url, "w1", "--exit-when-empty", *FAST_RETRIES), log_path), log_path)

    _, decided, quarantine = _final_state(store, ids)
    assert set(quarantine) == {ids[i] for i in flaky_at}
    for i in flaky_at:
        entry = quarantine[ids[i]]
        assert (entry.attempts, entry.error_kind) == (3, ErrorKind.MODEL), entry
        assert entry.reason == "route answered error (model): stand-in classifier ran past its 10 ms deadline"
    assert len(decided) == len(texts) - len(flaky_at)
    listing = _cli("quarantine", "list", "--store", store)
    assert [_listed_kind(listing, ids[i]) for i in flaky_at] == ["model", "model"], listing

    route.switch("flaky", False)  # the model is fixed
    assert f"replayed {len(flaky_at)} item(s)" in _cli("quarantine", "replay", "--all", "--store", store)
    _finish(_spawn(worker_command(store, url, "w2", "--exit-when-empty", *FAST_RETRIES), log_path), log_path)
    counts, decided, quarantine = _final_state(store, ids)
    assert quarantine == {} and counts[Status.DECIDED] == len(texts)
    for i in flaky_at:
        assert (decided[ids[i]].decision, decided[ids[i]].worker) == (expected_decision(texts[i]), "w2")


def test_error_without_error_kind_from_an_older_route_is_retried_like_a_model_fault(route, tmp_path):
    db, log_path = tmp_path / "queue.sqlite", tmp_path / "worker.log"
    route.switch("legacy", True)  # error audits without error_kind
    texts = ["older 1", "", "older 2 darn"]
    with SqliteQueue(db) as queue:
        ids = queue.enqueue("text", texts)
    command = worker_command(db, route.server.grpc_url, "w1", "--exit-when-empty", *FAST_RETRIES)
    _finish(_spawn(command, log_path), log_path)

    _, decided, quarantine = _final_state(str(db), ids)
    (entry,) = quarantine.values()
    assert entry.item_id == ids[1] and (entry.attempts, entry.error_kind) == (3, ErrorKind.MODEL)
    assert entry.reason.startswith("route answered error (no error_kind; retried as model): text[")
    assert [decided[ids[i]].decision for i in (0, 2)] == ["allow", "block"]


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
            assert {entry.error_kind for entry in quarantine} == {ErrorKind.SERVER}
            assert all(entry.attempts == 2 for entry in quarantine), "a server fault is retried"
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

    texts = ["what a lovely trailer", "you are a fucking idiot", "loved the premiere", "", "great soundtrack"] * 4
    with SqliteQueue(tmp_path / "queue.sqlite", RetryPolicy(max_attempts=2, backoff_s=0.0)) as queue:
        ids = queue.enqueue("text", texts)
        settings = WorkerSettings(batch_size=8, exit_when_empty=True, name="real")
        with ModerationClient(text_triton.grpc_url, timeout_s=60) as client:
            stats = Worker(queue, client, settings).run(handle_signals=False)
        decisions = {d.item_id: d for d in queue.decisions()}
        quarantine = {entry.item_id: entry for entry in queue.quarantined()}

    empty_ids = {item_id for item_id, text in zip(ids, texts, strict=True) if not text}
    assert set(quarantine) == empty_ids and len(decisions) == len(ids) - len(empty_ids)
    for entry in quarantine.values():
        assert (entry.attempts, entry.error_kind) == (1, ErrorKind.INPUT), entry
        assert entry.reason.startswith("route answered error (input): text[") and "is empty" in entry.reason
    assert (stats.decided, stats.quarantined, stats.bad_input, stats.retried) == (len(decisions), 4, 4, 0)
    for item_id, text in zip(ids, texts, strict=True):
        if text:
            audit = decisions[item_id].audit_json
            assert audit["decision"] == decisions[item_id].decision and audit["policy_sha256"] and audit["stages"]
    profane = [decisions[i].decision for i, t in zip(ids, texts, strict=True) if "idiot" in t]
    clean = [decisions[i].decision for i, t in zip(ids, texts, strict=True) if t and "idiot" not in t]
    assert set(profane) <= {"review", "block"} and set(clean) == {"allow"}


def test_real_route_with_a_missing_classifier_retries_its_texts_as_model_faults(text_triton, tmp_path):
    """A real model fault: the variant's stage-2 classifier is not loaded, so the texts that
    need stage 2 get "error" (error_kind model) and are retried; the others are decided."""
    from clients.moderation import ModerationClient
    from export.moderation.text_dataset import build_dataset
    from tests.fixtures_moderation_text import BROKEN_ROUTE

    texts = [example.text for example in build_dataset().test[:24]]
    with ModerationClient(text_triton.grpc_url, timeout_s=60, text_model=BROKEN_ROUTE) as client:
        expected = client.moderate_text(texts)
    failing = {i for i, result in enumerate(expected) if result.is_error}
    assert 0 < len(failing) < len(texts), "the test needs texts on both sides of the ambiguous band"
    assert {expected[i].error_kind for i in failing} == {"model"}

    db, log_path = tmp_path / "queue.sqlite", tmp_path / "worker.log"
    with SqliteQueue(db) as queue:
        ids = queue.enqueue("text", texts)
    command = worker_command(db, text_triton.grpc_url, "w1", "--text-model", BROKEN_ROUTE, "--exit-when-empty")
    _finish(_spawn([*command, "--batch-size", "8", *FAST_RETRIES], log_path), log_path)

    _, decided, quarantine = _final_state(str(db), ids)
    assert set(quarantine) == {ids[i] for i in failing}
    for i in failing:
        entry = quarantine[ids[i]]
        assert (entry.attempts, entry.error_kind) == (3, ErrorKind.MODEL), entry
        assert entry.reason.startswith("route answered error (model): ") and "no_such_classifier" in entry.reason
    assert all(decided[ids[i]].decision == expected[i].decision for i in range(len(texts)) if i not in failing)


def test_non_images_go_to_quarantine_on_their_first_attempt_through_the_real_image_route(image_server_alive, store):
    from clients.moderation import ModerationClient
    from export.moderation_image import synthetic
    from marquee.moderation.worker import Worker, WorkerSettings

    good = [synthetic.encode(synthetic.plain_image(240, 320, seed)) for seed in (1, 2, 3)]
    truncated = synthetic.encode(synthetic.plain_image(300, 300, 5))
    images = [good[0], b"%PDF-1.7 not an image", good[1], truncated[: len(truncated) // 2], good[2]]
    bad = {1: "not a JPEG or PNG", 3: "truncated JPEG"}
    with open_queue(store, RetryPolicy(max_attempts=3, backoff_s=0.0)) as queue:
        ids = queue.enqueue("image", images)
        settings = WorkerSettings(batch_size=8, exit_when_empty=True, name="images")
        with ModerationClient(image_server_alive.grpc_url, timeout_s=120) as client:
            stats = Worker(queue, client, settings).run(handle_signals=False)

    _, decided, quarantine = _final_state(store, ids)
    assert set(quarantine) == {ids[i] for i in bad}
    for i, message in bad.items():
        entry = quarantine[ids[i]]
        assert (entry.kind, entry.attempts, entry.error_kind) == ("image", 1, ErrorKind.INPUT), entry
        assert entry.reason.startswith("route answered error (input): ") and message in entry.reason
    with ModerationClient(image_server_alive.grpc_url, timeout_s=120) as client:
        asked_directly = [result.decision for result in client.moderate_images(good)]
    assert [decided[ids[i]].decision for i in (0, 2, 4)] == asked_directly
    assert (stats.decided, stats.quarantined, stats.bad_input, stats.retried) == (3, 2, 2, 0)
