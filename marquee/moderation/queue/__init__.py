"""The durable moderation queue: items wait here until a worker gets a decision for them.

Every item ends in exactly one of two places: `decided` (a decision row holding the
route's audit JSON) or `quarantined` (a reason a person can read, and `replay` to try
again). In between it is `pending` or `leased`: a worker claims a batch under a lease,
and if the worker dies the lease expires and another worker claims the items again, so
delivery is at-least-once while the decision stays exactly-once (the first decision
recorded wins; later ones for the same item are ignored).

Each failure carries an `ErrorKind`, and the kind decides what happens: bad input
("input") is quarantined on its first attempt, because asking again cannot help; model,
server and lease failures are retried with backoff until `RetryPolicy.max_attempts`.
The quarantine record keeps the kind, so an operator sees bad input apart from faults
that a replay may cure.

Two implementations share the `ModerationQueue` protocol: SQLite in WAL mode (embedded,
no server: `SqliteQueue`) and Redis Streams (`marquee.moderation.redis_queue.RedisQueue`).
`open_queue(location)` picks one from a path or a `redis://` URL.
"""

from __future__ import annotations

import enum
import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from marquee.errors import MarqueeError
from marquee.moderation.policy import INPUT_ERROR, MODEL_ERROR

KINDS = ("text", "image")
# What a worker may record as a decision; the route's per-item "error" goes to quarantine.
DECISIONS = ("allow", "review", "block")
# A queue is not a blob store: anything larger belongs in object storage, referenced by id.
MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
MAX_ITEM_ID_CHARS = 128


class QueueError(MarqueeError):
    """A queue operation was asked for something the queue cannot do (unknown item, bad kind)."""


class QueueStoreError(QueueError):
    """The store could not carry out the operation: Redis unreachable or restarting, the
    SQLite file's disk full or locked past the timeout. The operation changed nothing (its
    transaction or script did not run, or was rolled back); it may succeed when retried later."""


class Status(enum.StrEnum):
    PENDING = "pending"
    LEASED = "leased"
    DECIDED = "decided"
    QUARANTINED = "quarantined"


class FailOutcome(enum.StrEnum):
    RETRY = "retry"  # back to pending after a backoff
    QUARANTINED = "quarantined"
    STALE = "stale"  # this worker no longer holds the lease: another worker owns the item now


class ErrorKind(enum.StrEnum):
    """Why an attempt failed; recorded with the quarantine entry."""

    INPUT = INPUT_ERROR  # the item itself is unusable (the route said so, or refused the request)
    MODEL = MODEL_ERROR  # the route could not judge it: a model failed, ran late or is not loaded
    SERVER = "server"  # the request failed: server down, timed out, internal error, route not loaded
    LEASE = "lease"  # its lease expired `max_attempts` times: it kills or hangs the workers
    UNKNOWN = "unknown"  # quarantined before the queue recorded kinds (read back only)

    @property
    def retryable(self) -> bool:
        """Whether another attempt may succeed. Only bad input is hopeless."""
        return self is not ErrorKind.INPUT


# What `fail()` accepts; LEASE is the queue's own verdict and UNKNOWN only describes old records.
FAIL_KINDS = (ErrorKind.INPUT, ErrorKind.MODEL, ErrorKind.SERVER)


def check_fail_kind(error_kind: str) -> ErrorKind:
    if error_kind not in FAIL_KINDS:
        raise QueueError(f"fail: error_kind={error_kind!r}; allowed: {', '.join(FAIL_KINDS)}")
    return ErrorKind(error_kind)


def read_error_kind(value: str | None) -> ErrorKind:
    """The kind of a stored quarantine record (records written before kinds existed have none)."""
    try:
        return ErrorKind(value) if value else ErrorKind.UNKNOWN
    except ValueError:
        return ErrorKind.UNKNOWN


@dataclass(frozen=True)
class RetryPolicy:
    """How often an item is tried before it is quarantined, and how long it waits in between.

    Applies to retryable failures (every `ErrorKind` but INPUT, which is quarantined on
    its first attempt). `max_attempts` counts claims, so an item whose worker dies every time it is claimed
    (a payload that crashes the worker) is also quarantined after `max_attempts` leases.
    """

    max_attempts: int = 3
    backoff_s: float = 2.0  # wait after the first failure; doubles with each attempt
    max_backoff_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"RetryPolicy.max_attempts={self.max_attempts}; must be >= 1")
        if self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ValueError(
                f"RetryPolicy backoff_s={self.backoff_s}, max_backoff_s={self.max_backoff_s}; must be >= 0"
            )

    def delay(self, attempts: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * 2 ** max(0, attempts - 1))


@dataclass(frozen=True)
class Item:
    id: str
    kind: str
    payload: bytes
    attempts: int  # claims so far, this one included

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8")


@dataclass(frozen=True)
class Decision:
    item_id: str
    decision: str
    audit: str  # the route's audit JSON, verbatim
    decided_at: float
    worker: str

    @property
    def audit_json(self) -> dict:
        return json.loads(self.audit)


@dataclass(frozen=True)
class QuarantineEntry:
    item_id: str
    kind: str  # text | image
    reason: str
    attempts: int
    quarantined_at: float
    error_kind: ErrorKind = ErrorKind.UNKNOWN  # input: bad item; model / server / lease: a replay may help


@dataclass(frozen=True)
class Verdict:
    """What a worker writes for one item."""

    item_id: str
    decision: str
    audit: str


@dataclass(frozen=True)
class QueueSnapshot:
    """The queue as its metrics see it, read in one consistent pass (`ModerationQueue.snapshot`;
    the collector in marquee/moderation/metrics.py turns it into Prometheus series).

    `pending` counts items waiting for a worker, those waiting out a retry backoff
    included; `oldest_pending_enqueued_at` is the enqueue time of the longest-waiting of
    them (a replayed item keeps its first enqueue time), None when nothing is pending.
    """

    taken_at: float  # the queue's clock when it was read
    counts: dict[Status, int]
    oldest_pending_enqueued_at: float | None
    quarantined_by_kind: dict[ErrorKind, int]  # every ErrorKind, zeros included
    decisions_by_decision: dict[str, int]  # every DECISIONS value, zeros included

    @property
    def oldest_pending_age_s(self) -> float:
        """Classification lag: how long the longest-waiting pending item has waited (0 if none)."""
        if self.oldest_pending_enqueued_at is None:
            return 0.0
        return max(0.0, self.taken_at - self.oldest_pending_enqueued_at)


def make_snapshot(
    taken_at: float,
    counts: dict[Status, int],
    oldest_pending_enqueued_at: float | None,
    quarantined: dict[str | None, int],
    decisions: dict[str, int],
) -> QueueSnapshot:
    """A snapshot from a backend's raw counts: kinds normalised, absent keys as zeros."""
    by_kind = dict.fromkeys(ErrorKind, 0)
    for kind, n in quarantined.items():
        by_kind[read_error_kind(kind)] += int(n)
    by_decision = dict.fromkeys(DECISIONS, 0)
    for decision, n in decisions.items():
        if decision in by_decision:
            by_decision[decision] += int(n)
    return QueueSnapshot(
        taken_at,
        {status: int(counts.get(status, 0)) for status in Status},
        oldest_pending_enqueued_at,
        by_kind,
        by_decision,
    )


@runtime_checkable
class ModerationQueue(Protocol):
    retry: RetryPolicy

    def enqueue(self, kind: str, payloads: Sequence[str | bytes], ids: Sequence[str] | None = None) -> list[str]:
        """Add items; returns their ids. An id that is already queued is skipped (idempotent enqueue)."""

    def claim(self, worker: str, limit: int, lease_s: float) -> list[Item]:
        """Lease up to `limit` claimable items (pending and due, or leased with an expired lease)."""

    def renew(self, item_ids: Sequence[str], worker: str, lease_s: float) -> int:
        """Extend this worker's leases; returns how many it still held."""

    def decide(self, verdicts: Sequence[Verdict], worker: str) -> list[str]:
        """Record decisions in one transaction; returns the ids decided now (not before)."""

    def fail(self, item_id: str, worker: str, reason: str, error_kind: str = ErrorKind.MODEL) -> FailOutcome:
        """Give up this attempt. Bad input (`ErrorKind.INPUT`) is quarantined now; the other
        kinds are retried after a backoff until attempts are spent, then quarantined. The
        quarantine entry keeps `reason` and `error_kind`. STALE when this worker no longer
        holds the lease (nothing changes then)."""

    def quarantined(self, limit: int | None = None) -> list[QuarantineEntry]: ...

    def replay(self, item_ids: Sequence[str] | None = None) -> list[str]:
        """Send quarantined items (all of them when `item_ids` is None) back to pending with fresh attempts."""

    def decision(self, item_id: str) -> Decision | None: ...

    def decisions(self) -> list[Decision]:
        """Every decision, oldest first (for audits and tests; not for huge queues)."""

    def item(self, item_id: str) -> Item: ...

    def status(self, item_id: str) -> Status: ...

    def leased(self) -> dict[str, str]:
        """Item id -> worker holding its lease, for every leased item."""

    def counts(self) -> dict[Status, int]: ...

    def snapshot(self) -> QueueSnapshot:
        """Depth, lag, leases, quarantine by kind and decisions by decision, read together
        (what the queue metrics export on each scrape)."""

    def close(self) -> None: ...


def new_item_id() -> str:
    # 64 random bits: short enough to type into `marquee quarantine replay`. Collisions
    # are rare but possible at scale, so queues insert generated ids with a uniqueness check.
    return uuid.uuid4().hex[:16]


def encode_payloads(kind: str, payloads: Sequence[str | bytes], ids: Sequence[str] | None) -> list[tuple[str, bytes]]:
    """Check an enqueue request and turn it into (id, payload bytes) pairs."""
    if kind not in KINDS:
        raise QueueError(f"kind={kind!r}; allowed: {', '.join(KINDS)}")
    if ids is not None and len(ids) != len(payloads):
        raise QueueError(f"ids has {len(ids)} entries but payloads has {len(payloads)}; they must match one to one")
    encoded = []
    for index, payload in enumerate(payloads):
        if kind == "text":
            if not isinstance(payload, str):
                raise QueueError(f"payloads[{index}] is {type(payload).__name__}; text items must be str")
            try:
                data = payload.encode("utf-8")
            except UnicodeEncodeError as error:  # lone surrogates, e.g. from a bad decode upstream
                raise QueueError(
                    f"payloads[{index}] has a character UTF-8 cannot encode ({error.reason} at position "
                    f"{error.start}); text items must be valid Unicode"
                ) from None
        else:
            if not isinstance(payload, bytes | bytearray | memoryview):
                raise QueueError(f"payloads[{index}] is {type(payload).__name__}; image items must be bytes")
            data = bytes(payload)
        if len(data) > MAX_PAYLOAD_BYTES:
            raise QueueError(f"payloads[{index}] is {len(data):,} bytes; allowed: at most {MAX_PAYLOAD_BYTES:,}")
        item_id = new_item_id() if ids is None else str(ids[index])
        if not item_id or len(item_id) > MAX_ITEM_ID_CHARS or not item_id.isprintable() or " " in item_id:
            raise QueueError(
                f"ids[{index}]={item_id!r}; allowed: 1 to {MAX_ITEM_ID_CHARS} printable characters without spaces"
            )
        encoded.append((item_id, data))
    return encoded


def check_verdicts(verdicts: Sequence[Verdict]) -> None:
    for verdict in verdicts:
        if verdict.decision not in DECISIONS:
            raise QueueError(
                f"item {verdict.item_id}: decision={verdict.decision!r}; allowed: {', '.join(DECISIONS)} "
                "(route errors go to quarantine through fail())"
            )


def default_location() -> str:
    from marquee.paths import cache_dir

    return os.environ.get("MARQUEE_MODERATION_QUEUE", str(cache_dir() / "moderation" / "queue.sqlite"))


def open_queue(location: str | Path | None = None, retry: RetryPolicy | None = None) -> ModerationQueue:
    """A SQLite file path or a `redis://host:port/db` URL (default: $MARQUEE_MODERATION_QUEUE,
    else .marquee/moderation/queue.sqlite)."""
    location = str(location or default_location())
    retry = retry or RetryPolicy()
    if location.startswith(("redis://", "rediss://", "unix://")):
        from marquee.moderation.redis_queue import RedisQueue

        return RedisQueue.from_url(location, retry=retry)
    from marquee.moderation.queue.sqlite import SqliteQueue

    return SqliteQueue(Path(location), retry=retry)


__all__ = [
    "DECISIONS",
    "KINDS",
    "Decision",
    "ErrorKind",
    "FailOutcome",
    "Item",
    "ModerationQueue",
    "QuarantineEntry",
    "QueueError",
    "QueueSnapshot",
    "RetryPolicy",
    "Status",
    "Verdict",
    "default_location",
    "open_queue",
]
