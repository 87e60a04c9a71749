"""The moderation queue contract, run against both implementations (SQLite; Redis Streams
when a redis-server is installed): leases, reclaim, retries, quarantine by error kind,
replay, idempotency. Then SQLite specifics: WAL, reopening, migrating an older file, two
processes claiming from one file."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from marquee.moderation.queue import (
    ErrorKind,
    FailOutcome,
    ModerationQueue,
    QueueError,
    RetryPolicy,
    Status,
    Verdict,
    open_queue,
)
from marquee.moderation.queue.sqlite import SqliteQueue


class FakeClock:
    """Time for leases and backoffs. Redis judges lease expiry by its own clock (how long an
    entry sat idle), so for Redis the test also really waits; leases there are kept short."""

    def __init__(self, really_wait: bool, now: float = 1_000_000.0):
        self.now = now
        self.really_wait = really_wait

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
        if self.really_wait:
            time.sleep(seconds)


RETRY = RetryPolicy(max_attempts=3, backoff_s=0.2)
LEASE = 0.3  # seconds


@pytest.fixture(params=["sqlite", "redis"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def clock(backend) -> FakeClock:
    return FakeClock(really_wait=backend == "redis")


@pytest.fixture
def queue(backend, tmp_path, clock, request) -> ModerationQueue:
    if backend == "sqlite":
        moderation_queue = SqliteQueue(tmp_path / "queue.sqlite", RETRY, clock=clock)
    else:
        import redis

        from marquee.moderation.redis_queue import RedisQueue

        url = request.getfixturevalue("redis_server_url")
        moderation_queue = RedisQueue(
            redis.Redis.from_url(url), prefix=f"test:{uuid.uuid4().hex}", retry=RETRY, clock=clock
        )
    yield moderation_queue
    moderation_queue.close()


@pytest.fixture
def sqlite_queue(tmp_path) -> SqliteQueue:
    with SqliteQueue(tmp_path / "queue.sqlite", RETRY) as moderation_queue:
        yield moderation_queue


def _allow(item_id: str) -> Verdict:
    return Verdict(item_id, "allow", '{"decision": "allow"}')


def test_queue_satisfies_the_protocol(queue):
    assert isinstance(queue, ModerationQueue)


def test_sqlite_queue_uses_wal(sqlite_queue):
    assert sqlite_queue._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_open_queue_picks_sqlite_for_a_path(tmp_path):
    moderation_queue = open_queue(tmp_path / "q.sqlite")
    assert isinstance(moderation_queue, SqliteQueue)
    moderation_queue.close()


def test_claim_hands_out_items_oldest_first_and_only_once_while_leased(queue):
    ids = queue.enqueue("text", [f"text {i}" for i in range(5)])
    first = queue.claim("w1", limit=3, lease_s=30)
    second = queue.claim("w2", limit=10, lease_s=30)
    assert [item.id for item in first] == ids[:3]
    assert [item.id for item in second] == ids[3:]
    assert queue.claim("w3", limit=10, lease_s=30) == []
    assert first[0].text == "text 0" and first[0].attempts == 1
    assert queue.counts()[Status.LEASED] == 5


def test_expired_lease_is_reclaimed_by_another_worker_with_one_more_attempt(queue, clock):
    (item_id,) = queue.enqueue("text", ["hello"])
    queue.claim("dead-worker", limit=1, lease_s=LEASE)
    clock.advance(LEASE / 3)
    assert queue.claim("w2", limit=1, lease_s=LEASE) == [], "a live lease must not be taken over"
    clock.advance(LEASE)
    (reclaimed,) = queue.claim("w2", limit=1, lease_s=LEASE)
    assert reclaimed.id == item_id and reclaimed.attempts == 2 and reclaimed.text == "hello"


def test_renewed_lease_is_not_reclaimed(queue, clock):
    queue.enqueue("text", ["hello"])
    (item,) = queue.claim("w1", limit=1, lease_s=LEASE)
    clock.advance(LEASE * 0.7)
    assert queue.renew([item.id], "w1", lease_s=LEASE) == 1
    assert queue.renew([item.id], "someone-else", lease_s=LEASE) == 0
    clock.advance(LEASE * 0.7)
    assert queue.claim("w2", limit=1, lease_s=LEASE) == []


def test_item_whose_lease_keeps_expiring_is_quarantined_instead_of_claimed_again(queue, clock):
    (item_id,) = queue.enqueue("text", ["crashes every worker"])
    for attempt in range(3):
        (item,) = queue.claim(f"w{attempt}", limit=1, lease_s=LEASE)
        clock.advance(LEASE * 1.2)
    assert queue.claim("w-last", limit=1, lease_s=LEASE) == []
    (entry,) = queue.quarantined()
    assert entry.item_id == item_id and entry.attempts == 3 and entry.error_kind is ErrorKind.LEASE
    assert "lease expired" in entry.reason and "w2" in entry.reason


def test_deciding_an_item_twice_keeps_the_first_decision(queue, clock):
    (item_id,) = queue.enqueue("text", ["hello"])
    queue.claim("slow-worker", limit=1, lease_s=LEASE)
    clock.advance(LEASE * 1.2)
    queue.claim("w2", limit=1, lease_s=LEASE)
    assert queue.decide([Verdict(item_id, "review", "{}")], "w2") == [item_id]
    assert queue.decide([Verdict(item_id, "block", "{}")], "slow-worker") == [], "late answer must be ignored"
    decision = queue.decision(item_id)
    assert (decision.decision, decision.worker) == ("review", "w2")
    assert queue.status(item_id) is Status.DECIDED
    assert [d.item_id for d in queue.decisions()] == [item_id]
    assert queue.claim("w3", limit=1, lease_s=LEASE) == [], "a decided item is never handed out again"


def test_a_batch_of_decisions_commits_whole_or_not_at_all(queue):
    ids = queue.enqueue("text", ["a", "b"])
    queue.claim("w1", limit=2, lease_s=30)
    with pytest.raises(QueueError, match="no item with id 'missing'"):
        queue.decide([_allow(ids[0]), _allow("missing"), _allow(ids[1])], "w1")
    assert queue.counts()[Status.DECIDED] == 0 and queue.decision(ids[0]) is None


def test_decide_rejects_an_error_decision_naming_the_allowed_ones(queue):
    (item_id,) = queue.enqueue("text", ["a"])
    with pytest.raises(QueueError, match=r"decision='error'; allowed: allow, review, block"):
        queue.decide([Verdict(item_id, "error", "{}")], "w1")


def test_failed_item_waits_for_its_backoff_then_is_quarantined_after_max_attempts(queue, clock):
    (item_id,) = queue.enqueue("text", ["flaky"])
    (item,) = queue.claim("w1", limit=1, lease_s=30)
    assert queue.fail(item_id, "w1", "timeout") is FailOutcome.RETRY  # error_kind defaults to model
    clock.advance(0.15)  # backoff after attempt 1 is 0.2 s
    assert queue.claim("w1", limit=1, lease_s=30) == []
    clock.advance(0.1)
    queue.claim("w1", limit=1, lease_s=30)
    assert queue.fail(item_id, "w1", "timeout", ErrorKind.MODEL) is FailOutcome.RETRY
    clock.advance(0.45)  # backoff after attempt 2 is 0.4 s
    (item,) = queue.claim("w1", limit=1, lease_s=30)
    assert item.attempts == 3
    assert queue.fail(item_id, "w1", "timeout again", "server") is FailOutcome.QUARANTINED
    (entry,) = queue.quarantined()
    assert (entry.item_id, entry.kind, entry.reason, entry.attempts) == (item_id, "text", "timeout again", 3)
    assert entry.error_kind is ErrorKind.SERVER, "the record keeps the kind of the last failure"


@pytest.mark.parametrize("error_kind", [ErrorKind.MODEL, ErrorKind.SERVER])
def test_model_and_server_failures_go_back_to_pending(queue, error_kind):
    (item_id,) = queue.enqueue("text", ["a"])
    queue.claim("w1", limit=1, lease_s=30)
    assert queue.fail(item_id, "w1", "model down", error_kind) is FailOutcome.RETRY
    assert queue.status(item_id) is Status.PENDING and queue.quarantined() == []


def test_bad_input_is_quarantined_on_its_first_attempt_with_its_kind(queue):
    ids = queue.enqueue("text", ["", "fine"])
    queue.claim("w1", limit=2, lease_s=30)
    assert queue.fail(ids[0], "w1", "text[0] is empty", ErrorKind.INPUT) is FailOutcome.QUARANTINED
    assert queue.status(ids[0]) is Status.QUARANTINED and queue.status(ids[1]) is Status.LEASED
    (entry,) = queue.quarantined()
    assert (entry.item_id, entry.reason, entry.attempts, entry.error_kind) == (
        ids[0],
        "text[0] is empty",
        1,
        ErrorKind.INPUT,
    )
    assert queue.counts()[Status.QUARANTINED] == 1


@pytest.mark.parametrize("error_kind", ["lease", "unknown", "fatal", None])
def test_fail_rejects_an_error_kind_it_does_not_take_naming_the_allowed_ones(queue, error_kind):
    (item_id,) = queue.enqueue("text", ["a"])
    queue.claim("w1", limit=1, lease_s=30)
    with pytest.raises(QueueError, match=rf"error_kind={error_kind!r}; allowed: input, model, server"):
        queue.fail(item_id, "w1", "?", error_kind)
    assert queue.status(item_id) is Status.LEASED, "a rejected fail() must change nothing"


def test_replay_works_for_bad_input_and_model_failures_alike(queue, clock):
    ids = queue.enqueue("text", ["", "b"])
    queue.claim("w1", limit=2, lease_s=30)
    assert queue.fail(ids[0], "w1", "empty", ErrorKind.INPUT) is FailOutcome.QUARANTINED
    outcomes = [queue.fail(ids[1], "w1", "model down", ErrorKind.MODEL)]
    for _ in range(2):
        clock.advance(0.5)  # past the backoff (0.2 s, then 0.4 s)
        (item,) = queue.claim("w1", limit=2, lease_s=30)
        outcomes.append(queue.fail(item.id, "w1", "model down", ErrorKind.MODEL))
    assert outcomes == [FailOutcome.RETRY, FailOutcome.RETRY, FailOutcome.QUARANTINED]
    kinds = {entry.item_id: (entry.error_kind, entry.attempts) for entry in queue.quarantined()}
    assert kinds == {ids[0]: (ErrorKind.INPUT, 1), ids[1]: (ErrorKind.MODEL, 3)}
    assert sorted(queue.replay()) == sorted(ids)
    (item_a, item_b) = sorted(queue.claim("w2", limit=2, lease_s=30), key=lambda item: ids.index(item.id))
    assert (item_a.attempts, item_b.attempts) == (1, 1)
    assert queue.fail(ids[0], "w2", "still empty", ErrorKind.INPUT) is FailOutcome.QUARANTINED
    assert queue.fail(ids[1], "w2", "model down", ErrorKind.MODEL) is FailOutcome.RETRY


def test_failure_reported_after_another_worker_took_over_changes_nothing(queue, clock):
    (item_id,) = queue.enqueue("text", ["a"])
    queue.claim("w1", limit=1, lease_s=LEASE)
    clock.advance(LEASE * 1.2)
    queue.claim("w2", limit=1, lease_s=LEASE)
    assert queue.fail(item_id, "w1", "timeout", ErrorKind.INPUT) is FailOutcome.STALE
    assert queue.status(item_id) is Status.LEASED and queue.quarantined() == []


def test_replay_sends_quarantined_items_back_with_fresh_attempts(queue):
    ids = queue.enqueue("text", ["a", "b", "c"])
    queue.claim("w1", limit=3, lease_s=30)
    for item_id in ids[:2]:
        queue.fail(item_id, "w1", "text is empty", ErrorKind.INPUT)
    assert queue.replay([ids[0]]) == [ids[0]]
    assert [entry.item_id for entry in queue.quarantined()] == [ids[1]]
    assert queue.replay() == [ids[1]]
    assert queue.quarantined() == []
    claimed = queue.claim("w2", limit=5, lease_s=30)
    assert sorted(item.id for item in claimed) == sorted(ids[:2]) and {item.attempts for item in claimed} == {1}


def test_replay_of_items_not_in_quarantine_fails_whole_and_names_them(queue):
    ids = queue.enqueue("text", ["a", "b"])
    queue.claim("w1", limit=2, lease_s=30)
    queue.fail(ids[0], "w1", "text is empty", ErrorKind.INPUT)
    with pytest.raises(QueueError, match=rf"not quarantined: {ids[1]} \(leased\), nope \(unknown\)"):
        queue.replay([ids[0], ids[1], "nope"])
    assert queue.status(ids[0]) is Status.QUARANTINED, "a failed replay must change nothing"


def test_enqueue_with_caller_ids_is_idempotent(queue):
    assert queue.enqueue("text", ["a", "b"], ids=["post-1", "post-2"]) == ["post-1", "post-2"]
    queue.enqueue("text", ["a again"], ids=["post-1"])
    assert sum(queue.counts().values()) == 2
    assert [item.text for item in queue.claim("w1", limit=5, lease_s=30)] == ["a", "b"]


@pytest.mark.parametrize(
    ("kind", "payloads", "ids", "message"),
    [
        ("video", ["a"], None, r"kind='video'; allowed: text, image"),
        ("text", [b"bytes"], None, r"payloads\[0\] is bytes; text items must be str"),
        ("image", ["str"], None, r"payloads\[0\] is str; image items must be bytes"),
        ("text", ["a", "b"], ["only-one"], "ids has 1 entries but payloads has 2"),
        ("text", ["a"], ["has space"], r"ids\[0\]='has space'; allowed: 1 to 128 printable"),
    ],
)
def test_enqueue_rejects_bad_input_naming_the_field(queue, kind, payloads, ids, message):
    with pytest.raises(QueueError, match=message):
        queue.enqueue(kind, payloads, ids)
    assert sum(queue.counts().values()) == 0


def test_enqueue_rejects_text_that_utf8_cannot_encode(queue):
    with pytest.raises(QueueError, match=r"payloads\[1\] has a character UTF-8 cannot encode .*valid Unicode"):
        queue.enqueue("text", ["fine", "broken \udcff surrogate"])
    assert sum(queue.counts().values()) == 0


def test_images_round_trip_as_bytes(queue):
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    (item_id,) = queue.enqueue("image", [png])
    (item,) = queue.claim("w1", limit=1, lease_s=30)
    assert (item.id, item.kind, item.payload) == (item_id, "image", png)


def test_sqlite_state_survives_reopening_the_file(tmp_path):
    path = tmp_path / "queue.sqlite"
    with SqliteQueue(path) as first:
        ids = first.enqueue("text", ["a", "b"])
        first.claim("w1", limit=1, lease_s=30)
        first.decide([_allow(ids[0])], "w1")
    with SqliteQueue(path) as second:
        assert second.status(ids[0]) is Status.DECIDED and second.status(ids[1]) is Status.PENDING
        assert second.decision(ids[0]).audit_json == {"decision": "allow"}


def test_sqlite_file_from_before_error_kinds_is_migrated_and_its_old_entries_read_unknown(tmp_path):
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript(
        """CREATE TABLE items (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
               payload BLOB NOT NULL, status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
               lease_owner TEXT, lease_expiry REAL, not_before REAL NOT NULL DEFAULT 0, last_error TEXT,
               enqueued_at REAL NOT NULL);
           CREATE TABLE quarantine (item_id TEXT PRIMARY KEY REFERENCES items (id), reason TEXT NOT NULL,
               attempts INTEGER NOT NULL, quarantined_at REAL NOT NULL);
           INSERT INTO items (id, kind, payload, status, attempts, enqueued_at)
               VALUES ('old-1', 'text', X'', 'quarantined', 3, 1.0), ('new-1', 'text', X'', 'pending', 0, 2.0);
           INSERT INTO quarantine VALUES ('old-1', 'route answered error: text[0] is empty', 3, 5.0);"""
    )
    old.close()
    with SqliteQueue(path, RETRY) as moderation_queue:
        (entry,) = moderation_queue.quarantined()
        assert (entry.item_id, entry.attempts, entry.error_kind) == ("old-1", 3, ErrorKind.UNKNOWN)
        moderation_queue.claim("w1", limit=1, lease_s=30)
        assert moderation_queue.fail("new-1", "w1", "empty", ErrorKind.INPUT) is FailOutcome.QUARANTINED
        kinds = {e.item_id: e.error_kind for e in moderation_queue.quarantined()}
    assert kinds == {"old-1": ErrorKind.UNKNOWN, "new-1": ErrorKind.INPUT}
    with SqliteQueue(path, RETRY) as reopened:  # a second open finds the column and leaves it be
        assert {e.item_id: e.error_kind for e in reopened.quarantined()} == kinds


def test_redis_quarantine_record_from_before_error_kinds_reads_unknown(redis_server_url):
    import redis

    from marquee.moderation.redis_queue import RedisQueue

    client = redis.Redis.from_url(redis_server_url)
    prefix = f"test:{uuid.uuid4().hex}"
    with RedisQueue(client, prefix=prefix, retry=RETRY) as moderation_queue:
        (item_id,) = moderation_queue.enqueue("text", [""])
        moderation_queue.claim("w1", limit=1, lease_s=30)
        moderation_queue.fail(item_id, "w1", "empty", ErrorKind.INPUT)
        record = json.loads(client.hget(f"{prefix}:quarantine", item_id))
        assert record["error_kind"] == "input"
        (logged,) = client.xrange(f"{prefix}:quarantine-log")
        assert logged[1][b"error_kind"] == b"input"
        del record["error_kind"]  # as written by a queue from before error kinds
        client.hset(f"{prefix}:quarantine", item_id, json.dumps(record))
        (entry,) = moderation_queue.quarantined()
        assert (entry.item_id, entry.error_kind) == (item_id, ErrorKind.UNKNOWN)


def _claim_until_empty(path: str, worker: str, start, results) -> None:
    moderation_queue = SqliteQueue(Path(path))
    claimed = []
    start.wait(timeout=60)  # both processes begin claiming together
    while batch := moderation_queue.claim(worker, limit=7, lease_s=300):
        claimed += [item.id for item in batch]
        # Stands in for the route call between claim and decide. Without any gap, SQLite's
        # busy handler (which sleeps) lets one process take every batch: unfair, not unsafe.
        time.sleep(0.002)
        moderation_queue.decide([_allow(item.id) for item in batch], worker)
    moderation_queue.close()
    results.put((worker, claimed))


def test_two_processes_claiming_one_sqlite_file_never_get_the_same_item(tmp_path):
    path = tmp_path / "queue.sqlite"
    with SqliteQueue(path) as moderation_queue:
        ids = moderation_queue.enqueue("text", [f"t{i}" for i in range(1500)])
    context = multiprocessing.get_context("spawn")  # no inherited SQLite handles
    results, start = context.Queue(), context.Barrier(2)
    workers = [context.Process(target=_claim_until_empty, args=(str(path), f"p{i}", start, results)) for i in range(2)]
    for process in workers:
        process.start()
    claimed = dict(results.get(timeout=120) for _ in workers)
    for process in workers:
        process.join(timeout=30)
    first, second = claimed["p0"], claimed["p1"]
    assert not set(first) & set(second), "an item was leased to both processes"
    assert sorted(first + second) == sorted(ids) and len(first + second) == len(ids)
    assert first and second, "both processes should have claimed some items"
    with SqliteQueue(path) as moderation_queue:
        assert moderation_queue.counts()[Status.DECIDED] == len(ids)
