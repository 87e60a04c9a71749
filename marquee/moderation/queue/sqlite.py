"""The embedded moderation queue: one SQLite file in WAL mode, shared by any number of
worker processes on the machine.

Why it is safe with several workers:
- every state change runs in `BEGIN IMMEDIATE`, which takes SQLite's single write lock
  up front, so two workers can never read the same claimable rows and both lease them;
- WAL lets readers (`marquee quarantine list`, progress counts) run while a worker writes;
- a decision and its status change commit together, so a worker killed between them
  leaves the item leased (to be claimed again), never decided without a decision row.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from marquee.moderation.queue import (
    Decision,
    ErrorKind,
    FailOutcome,
    Item,
    QuarantineEntry,
    QueueError,
    QueueSnapshot,
    QueueStoreError,
    RetryPolicy,
    Status,
    Verdict,
    check_fail_kind,
    check_verdicts,
    encode_payloads,
    make_snapshot,
    new_item_id,
    read_error_kind,
)

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,  -- claim order: first in, first out
    id           TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL CHECK (kind IN ('text', 'image')),
    payload      BLOB NOT NULL,
    status       TEXT NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'leased', 'decided', 'quarantined')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    lease_owner  TEXT,
    lease_expiry REAL,
    not_before   REAL NOT NULL DEFAULT 0,  -- retry backoff: not claimable before this time
    last_error   TEXT,
    enqueued_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS items_by_status ON items (status, seq);
CREATE TABLE IF NOT EXISTS decisions (
    item_id    TEXT PRIMARY KEY REFERENCES items (id),
    decision   TEXT NOT NULL,
    audit      TEXT NOT NULL,
    decided_at REAL NOT NULL,
    worker     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    item_id        TEXT PRIMARY KEY REFERENCES items (id),
    reason         TEXT NOT NULL,
    attempts       INTEGER NOT NULL,
    quarantined_at REAL NOT NULL,
    error_kind     TEXT NOT NULL DEFAULT 'unknown'  -- ErrorKind; 'unknown' for rows from before kinds
);
"""
# Files written before the quarantine recorded error kinds get the column on first open.
_ADD_ERROR_KIND = "ALTER TABLE quarantine ADD COLUMN error_kind TEXT NOT NULL DEFAULT 'unknown'"

# SQLite's default limit on bound parameters is 32766 in recent builds, 999 in old ones.
_CHUNK = 500


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


class SqliteQueue:
    """`ModerationQueue` over one SQLite file. One instance per process (or thread)."""

    def __init__(self, path: Path, retry: RetryPolicy | None = None, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self.retry = retry or RetryPolicy()
        # Wall-clock time: leases are compared across processes. Tests inject a fake clock.
        self._clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves.
        self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a decision that was reported written survives a power cut, not just a crash.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        # executescript commits any open transaction first, so the script brings its own.
        self._db.executescript(f"BEGIN IMMEDIATE;{SCHEMA}COMMIT;")
        with self._write() as db:  # under the write lock: two processes opening an old file migrate once
            columns = {row[1] for row in db.execute("PRAGMA table_info(quarantine)")}
            if "error_kind" not in columns:
                db.execute(_ADD_ERROR_KIND)

    def __repr__(self) -> str:
        return f"SqliteQueue({str(self.path)!r})"

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. A store failure (disk full, the lock held past the timeout)
        rolls it back and becomes QueueStoreError naming the file: the caller learns that
        nothing was written, instead of a bare sqlite3 error or, worse, a partial write."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")  # with a full disk, COMMIT is where the WAL append fails
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as error:
            hint = "; free space on that disk, then retry" if "full" in str(error) else "; retry later"
            raise QueueStoreError(f"{self!r}: {error}: nothing was written{hint}") from error

    # -- producers -------------------------------------------------------------------

    def enqueue(self, kind: str, payloads: Sequence[str | bytes], ids: Sequence[str] | None = None) -> list[str]:
        rows = encode_payloads(kind, payloads, ids)
        now = self._clock()
        with self._write() as db:
            out = []
            for item_id, data in rows:
                if ids is not None:  # caller's ids: enqueueing the same id again is a no-op
                    db.execute(
                        "INSERT OR IGNORE INTO items (id, kind, payload, enqueued_at) VALUES (?, ?, ?, ?)",
                        (item_id, kind, data, now),
                    )
                else:
                    item_id = self._insert_with_fresh_id(db, item_id, kind, data, now)
                out.append(item_id)
        return out

    @staticmethod
    def _insert_with_fresh_id(db: sqlite3.Connection, item_id: str, kind: str, data: bytes, now: float) -> str:
        while True:  # a generated id that collides must not silently drop the item
            try:
                db.execute(
                    "INSERT INTO items (id, kind, payload, enqueued_at) VALUES (?, ?, ?, ?)", (item_id, kind, data, now)
                )
                return item_id
            except sqlite3.IntegrityError:
                item_id = new_item_id()

    # -- workers ---------------------------------------------------------------------

    def claim(self, worker: str, limit: int, lease_s: float) -> list[Item]:
        if limit < 1 or lease_s <= 0:
            raise QueueError(f"claim(limit={limit}, lease_s={lease_s}); allowed: limit >= 1, lease_s > 0")
        now = self._clock()
        with self._write() as db:
            self._quarantine_exhausted_leases(db, now)
            rows = db.execute(
                """SELECT id, kind, payload, attempts FROM items
                   WHERE (status = 'pending' AND not_before <= ?) OR (status = 'leased' AND lease_expiry <= ?)
                   ORDER BY seq LIMIT ?""",
                (now, now, limit),
            ).fetchall()
            for chunk in _chunks([row[0] for row in rows]):
                db.execute(
                    f"""UPDATE items SET status = 'leased', lease_owner = ?, lease_expiry = ?, attempts = attempts + 1
                        WHERE id IN ({_marks(chunk)})""",
                    (worker, now + lease_s, *chunk),
                )
        return [Item(item_id, kind, payload, attempts + 1) for item_id, kind, payload, attempts in rows]

    def _quarantine_exhausted_leases(self, db: sqlite3.Connection, now: float) -> None:
        """An item whose lease expired `max_attempts` times probably kills or hangs its
        worker; claiming it again would take down the next one too."""
        rows = db.execute(
            """SELECT id, attempts, lease_owner FROM items
               WHERE status = 'leased' AND lease_expiry <= ? AND attempts >= ?""",
            (now, self.retry.max_attempts),
        ).fetchall()
        for item_id, attempts, owner in rows:
            reason = f"lease expired without a decision {attempts} times (last worker {owner} died or hung)"
            self._quarantine(db, item_id, reason, attempts, now, ErrorKind.LEASE)

    def renew(self, item_ids: Sequence[str], worker: str, lease_s: float) -> int:
        expiry = self._clock() + lease_s
        held = 0
        with self._write() as db:
            for chunk in _chunks(list(item_ids)):
                held += db.execute(
                    f"""UPDATE items SET lease_expiry = ?
                        WHERE id IN ({_marks(chunk)}) AND status = 'leased' AND lease_owner = ?""",
                    (expiry, *chunk, worker),
                ).rowcount
        return held

    def decide(self, verdicts: Sequence[Verdict], worker: str) -> list[str]:
        check_verdicts(verdicts)
        now = self._clock()
        decided = []
        with self._write() as db:
            for verdict in verdicts:
                row = db.execute("SELECT status FROM items WHERE id = ?", (verdict.item_id,)).fetchone()
                if row is None:
                    raise QueueError(f"decide: no item with id {verdict.item_id!r} in {self.path}")
                if row[0] == Status.DECIDED:  # at-least-once delivery, exactly-once decision
                    continue
                db.execute(
                    "INSERT INTO decisions (item_id, decision, audit, decided_at, worker) VALUES (?, ?, ?, ?, ?)",
                    (verdict.item_id, verdict.decision, verdict.audit, now, worker),
                )
                db.execute(
                    """UPDATE items SET status = 'decided', lease_owner = NULL, lease_expiry = NULL, last_error = NULL
                       WHERE id = ?""",
                    (verdict.item_id,),
                )
                # A late answer from a worker whose lease had lapsed still beats quarantine.
                db.execute("DELETE FROM quarantine WHERE item_id = ?", (verdict.item_id,))
                decided.append(verdict.item_id)
        return decided

    def fail(self, item_id: str, worker: str, reason: str, error_kind: str = ErrorKind.MODEL) -> FailOutcome:
        kind = check_fail_kind(error_kind)
        now = self._clock()
        with self._write() as db:
            row = db.execute("SELECT status, lease_owner, attempts FROM items WHERE id = ?", (item_id,)).fetchone()
            if row is None:
                raise QueueError(f"fail: no item with id {item_id!r} in {self.path}")
            status, owner, attempts = row
            if status != Status.LEASED or owner != worker:
                return FailOutcome.STALE
            if not kind.retryable or attempts >= self.retry.max_attempts:
                self._quarantine(db, item_id, reason, attempts, now, kind)
                return FailOutcome.QUARANTINED
            db.execute(
                """UPDATE items SET status = 'pending', lease_owner = NULL, lease_expiry = NULL,
                   not_before = ?, last_error = ? WHERE id = ?""",
                (now + self.retry.delay(attempts), reason, item_id),
            )
            return FailOutcome.RETRY

    @staticmethod
    def _quarantine(
        db: sqlite3.Connection, item_id: str, reason: str, attempts: int, now: float, kind: ErrorKind
    ) -> None:
        db.execute(
            """UPDATE items SET status = 'quarantined', lease_owner = NULL, lease_expiry = NULL, last_error = ?
               WHERE id = ?""",
            (reason, item_id),
        )
        db.execute(
            """INSERT OR REPLACE INTO quarantine (item_id, reason, attempts, quarantined_at, error_kind)
               VALUES (?, ?, ?, ?, ?)""",
            (item_id, reason, attempts, now, kind.value),
        )
        log.warning("quarantined %s after %d attempt(s) (error kind %s): %s", item_id, attempts, kind, reason)

    # -- operators -------------------------------------------------------------------

    def quarantined(self, limit: int | None = None) -> list[QuarantineEntry]:
        rows = self._db.execute(
            """SELECT q.item_id, i.kind, q.reason, q.attempts, q.quarantined_at, q.error_kind
               FROM quarantine q JOIN items i ON i.id = q.item_id ORDER BY q.quarantined_at, i.seq LIMIT ?""",
            (-1 if limit is None else limit,),
        ).fetchall()
        return [QuarantineEntry(*row[:5], error_kind=read_error_kind(row[5])) for row in rows]

    def replay(self, item_ids: Sequence[str] | None = None) -> list[str]:
        with self._write() as db:
            if item_ids is None:
                ids = [row[0] for row in db.execute("SELECT item_id FROM quarantine ORDER BY quarantined_at")]
            else:
                ids = list(dict.fromkeys(item_ids))
                self._require_quarantined(db, ids)
            for chunk in _chunks(ids):
                db.execute(
                    f"""UPDATE items SET status = 'pending', attempts = 0, not_before = 0,
                        lease_owner = NULL, lease_expiry = NULL WHERE id IN ({_marks(chunk)})""",
                    tuple(chunk),
                )
                db.execute(f"DELETE FROM quarantine WHERE item_id IN ({_marks(chunk)})", tuple(chunk))
        return ids

    def _require_quarantined(self, db: sqlite3.Connection, ids: list[str]) -> None:
        statuses = {}
        for chunk in _chunks(ids):
            statuses.update(db.execute(f"SELECT id, status FROM items WHERE id IN ({_marks(chunk)})", tuple(chunk)))
        wrong = {item_id: statuses.get(item_id, "unknown") for item_id in ids if statuses.get(item_id) != "quarantined"}
        if wrong:
            shown = ", ".join(f"{item_id} ({status})" for item_id, status in list(wrong.items())[:10])
            raise QueueError(f"replay: only quarantined items can be replayed; not quarantined: {shown}")

    def decision(self, item_id: str) -> Decision | None:
        row = self._db.execute(
            "SELECT item_id, decision, audit, decided_at, worker FROM decisions WHERE item_id = ?", (item_id,)
        ).fetchone()
        return Decision(*row) if row else None

    def decisions(self) -> list[Decision]:
        rows = self._db.execute("SELECT item_id, decision, audit, decided_at, worker FROM decisions ORDER BY rowid")
        return [Decision(*row) for row in rows]

    def status(self, item_id: str) -> Status:
        row = self._db.execute("SELECT status FROM items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise QueueError(f"no item with id {item_id!r} in {self.path}")
        return Status(row[0])

    def item(self, item_id: str) -> Item:
        row = self._db.execute("SELECT id, kind, payload, attempts FROM items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise QueueError(f"no item with id {item_id!r} in {self.path}")
        return Item(*row)

    def leased(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT id, lease_owner FROM items WHERE status = 'leased'"))

    def counts(self) -> dict[Status, int]:
        counts = dict.fromkeys(Status, 0)
        for status, n in self._db.execute("SELECT status, count(*) FROM items GROUP BY status"):
            counts[Status(status)] = n
        return counts

    def snapshot(self) -> QueueSnapshot:
        # One read transaction: under WAL every query below sees the same commit.
        self._db.execute("BEGIN")
        try:
            now = self._clock()
            counts = {
                Status(status): n
                for status, n in self._db.execute("SELECT status, count(*) FROM items GROUP BY status")
            }
            (oldest,) = self._db.execute("SELECT min(enqueued_at) FROM items WHERE status = 'pending'").fetchone()
            quarantined = dict(self._db.execute("SELECT error_kind, count(*) FROM quarantine GROUP BY error_kind"))
            decisions = dict(self._db.execute("SELECT decision, count(*) FROM decisions GROUP BY decision"))
        finally:
            self._db.execute("COMMIT")
        return make_snapshot(now, counts, oldest, quarantined, decisions)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SqliteQueue:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
