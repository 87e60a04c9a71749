"""The human review queue: items a route decided "review" wait here for a person.

A reviewer gives each item a label (clean, or the harm it shows). Every label is an
audit record, append-only: who, when, the label, the action it implies (allow for
clean, block otherwise) and whether it confirmed or overturned the model (`confirmed`:
the model flagged a harmful item; `overturned`: it flagged a clean one), with the
model's decision, its leading category and the policy version that decided. Labelled
items export as the TSV that `marquee moderation calibrate` and `train` read.

Items come from the moderation queue's decisions (`import_reviews`), or are added
directly. SQLite in WAL mode, like the moderation queue, so the terminal and the web
page can label from separate processes.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from marquee.errors import MarqueeError
from marquee.moderation.labels import CLEAN, write_labels
from marquee.specs.moderation_text import TEXT_CLASSES

REVIEW_LABELS = TEXT_CLASSES  # clean, insult, threat, sexual, spam
SCHEMA = """
CREATE TABLE IF NOT EXISTS review_items (
    id TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    decision TEXT NOT NULL,
    audit TEXT NOT NULL,
    added_at REAL NOT NULL,
    labelled INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS review_open ON review_items (labelled, added_at);
CREATE TABLE IF NOT EXISTS review_audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    at REAL NOT NULL,
    label TEXT NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    model_decision TEXT NOT NULL,
    model_category TEXT,
    policy_version TEXT,
    via TEXT NOT NULL
);
"""


class ReviewError(MarqueeError, ValueError):
    """A review request names an unknown item, label or reviewer; the message says what is allowed."""


@dataclass(frozen=True)
class ReviewItem:
    id: str
    text: str
    decision: str
    audit: dict
    added_at: float

    @property
    def model_category(self) -> str | None:
        """The category of the first reason the policy gave ("insult=0.71>=review 0.5" -> insult)."""
        reasons = self.audit.get("reasons") or []
        return str(reasons[0]).split("=", 1)[0] if reasons else None


@dataclass(frozen=True)
class ReviewRecord:
    item_id: str
    reviewer: str
    at: float
    label: str
    action: str
    outcome: str
    model_decision: str
    model_category: str | None
    policy_version: str | None
    via: str

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def outcome_of(label: str) -> tuple[str, str]:
    """(action, outcome) of a reviewer's label on an item the model flagged."""
    return ("allow", "overturned") if label == CLEAN else ("block", "confirmed")


class ReviewQueue:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ReviewQueue:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def add(self, item_id: str, text: str, decision: str, audit: dict | str) -> bool:
        """Queue one item for review; False if it was queued before (idempotent)."""
        audit_text = audit if isinstance(audit, str) else json.dumps(audit, sort_keys=True)
        with self._write() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO review_items (id, text, decision, audit, added_at) VALUES (?, ?, ?, ?, ?)",
                (item_id, text, decision, audit_text, time.time()),
            )
        return cursor.rowcount == 1

    def open_items(self, limit: int = 50) -> list[ReviewItem]:
        rows = self._db.execute(
            "SELECT id, text, decision, audit, added_at FROM review_items WHERE labelled = 0 "
            "ORDER BY added_at, id LIMIT ?",
            (limit,),
        ).fetchall()
        return [ReviewItem(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in rows]

    def item(self, item_id: str) -> ReviewItem:
        row = self._db.execute(
            "SELECT id, text, decision, audit, added_at FROM review_items WHERE id = ?", (item_id,)
        ).fetchone()
        if row is None:
            raise ReviewError(f"review item {item_id!r} is not in the review queue {self.path}")
        return ReviewItem(row[0], row[1], row[2], json.loads(row[3]), row[4])

    def label(self, item_id: str, label: str, reviewer: str, via: str) -> ReviewRecord:
        """Record a reviewer's label (a later label of the same item is audited too and wins)."""
        if label not in REVIEW_LABELS:
            raise ReviewError(f"label={label!r}; allowed: {', '.join(REVIEW_LABELS)}")
        reviewer = reviewer.strip()
        if not reviewer or len(reviewer) > 100:
            raise ReviewError(f"reviewer={reviewer!r}; allowed: a name of 1 to 100 characters")
        item = self.item(item_id)
        action, outcome = outcome_of(label)
        record = ReviewRecord(
            item_id,
            reviewer,
            time.time(),
            label,
            action,
            outcome,
            item.decision,
            item.model_category,
            item.audit.get("policy_version"),
            via,
        )
        with self._write() as db:
            db.execute(
                "INSERT INTO review_audit (item_id, reviewer, at, label, action, outcome, model_decision, "
                "model_category, policy_version, via) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.item_id,
                    record.reviewer,
                    record.at,
                    record.label,
                    record.action,
                    record.outcome,
                    record.model_decision,
                    record.model_category,
                    record.policy_version,
                    record.via,
                ),
            )
            db.execute("UPDATE review_items SET labelled = 1 WHERE id = ?", (item_id,))
        return record

    def audit_log(self, item_id: str | None = None) -> list[ReviewRecord]:
        query = (
            "SELECT item_id, reviewer, at, label, action, outcome, model_decision, model_category, "
            "policy_version, via FROM review_audit"
        )
        rows = self._db.execute(
            query + (" WHERE item_id = ? ORDER BY seq" if item_id else " ORDER BY seq"), (item_id,) if item_id else ()
        ).fetchall()
        return [ReviewRecord(*row) for row in rows]

    def counts(self) -> dict[str, int]:
        open_, done = self._db.execute(
            "SELECT COALESCE(SUM(labelled = 0), 0), COALESCE(SUM(labelled = 1), 0) FROM review_items"
        ).fetchone()
        return {"open": int(open_), "labelled": int(done)}

    def export_labels(self, path: str | Path) -> Path:
        """The latest label of every labelled item, as the TSV `calibrate` and `train` read."""
        rows = self._db.execute(
            "SELECT i.text, a.label FROM review_items i JOIN review_audit a ON a.item_id = i.id "
            "WHERE a.seq = (SELECT MAX(seq) FROM review_audit WHERE item_id = i.id) ORDER BY i.added_at, i.id"
        ).fetchall()
        return write_labels(path, [(label, text) for text, label in rows])


def import_reviews(review: ReviewQueue, queue) -> int:
    """Copy every text the moderation queue decided "review" into the review queue
    (idempotent); returns how many were new."""
    added = 0
    for decision in queue.decisions():
        if decision.decision != "review":
            continue
        item = queue.item(decision.item_id)
        if item.kind != "text":
            continue
        added += review.add(decision.item_id, item.text, decision.decision, decision.audit)
    return added


def default_review_path() -> Path:
    import os

    from marquee.paths import cache_dir

    return Path(os.environ.get("MARQUEE_REVIEW_QUEUE", cache_dir() / "moderation" / "review.sqlite"))
