"""The moderation worker: claim a batch, ask the route about it in one request, record
decisions; what the models could not judge goes to quarantine.

Failure handling, per kind of failure (the `ErrorKind` recorded with the quarantine entry):
- the route answers decision "error" for one item with `error_kind` "input" (empty or
  too long text, invalid UTF-8, not an image, corrupt image): asking again cannot help,
  so the item is quarantined on this, its first, attempt ("input");
- the route answers "error" with `error_kind` "model" (a model failed, ran late or is not
  loaded): retried with backoff ("model"). An audit without `error_kind` comes from a
  route older than error kinds and is treated the same: retrying may cost a bad item a
  few attempts, while quarantining could shelve a good item for a passing fault;
- the server is down or the route not loaded: every item in the batch fails this attempt
  and is retried after a backoff; the worker also backs off before claiming again ("server");
- the request fails or times out (InferenceError), or the server refuses it as the
  caller's mistake (InputValidationError: INVALID_ARGUMENT / HTTP 400): one item can
  spoil the whole request, so the worker asks again item by item to find it. A single
  item whose request still fails uses up an attempt ("server"); one whose request is
  still refused is bad input and is quarantined at once ("input").
  Item by item rather than bisecting: batches are small (16 by default), the split
  takes one pass of single-item requests and pins down every culprit, and a request that
  times out is paid for once more, not once per level of a bisection.
Retried items are quarantined after `RetryPolicy.max_attempts` attempts (default 3,
counting claims; a worker killed mid-batch also costs its items one attempt).

The store failing (Redis down or restarting, the SQLite disk full: QueueStoreError) makes
the worker wait and claim again, with the same doubling backoff; the batch in hand stays
leased and is claimed again when its lease runs out, so nothing is lost or decided twice.

SIGTERM or SIGINT stops the worker after the batch in hand: its decisions are written
and nothing is left leased. A worker killed outright (SIGKILL, OOM, power) leaves its
batch leased; another worker claims it again when the lease expires.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from marquee.errors import InferenceError, InputValidationError, ModelNotReadyError, ServerUnavailableError
from marquee.moderation.queue import (
    DECISIONS,
    ErrorKind,
    FailOutcome,
    Item,
    ModerationQueue,
    QueueStoreError,
    Status,
    Verdict,
)

log = logging.getLogger(__name__)


class Moderator(Protocol):
    """What the worker calls: `clients.moderation.ModerationClient` in production."""

    def moderate(self, kind: str, payloads: Sequence[bytes]) -> list:
        """One `ModerationResult` per payload (the worker reads decision, error, error_kind
        and audit_json); raises InferenceError for a failed request and InputValidationError
        for one the server refused as the caller's mistake."""


@dataclass(frozen=True)
class WorkerSettings:
    batch_size: int = 16  # items per request to the route
    # Must outlast one batch, including the item-by-item retry after a failed request
    # (the lease is renewed before each single-item request).
    lease_s: float = 60.0
    idle_poll_s: float = 0.5
    exit_when_empty: bool = False  # stop once nothing is pending or leased (batch jobs, tests)
    unavailable_backoff_s: float = 1.0  # first wait after "server down"; doubles up to 30 s
    progress_every_s: float = 10.0
    name: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"WorkerSettings.batch_size={self.batch_size}; must be >= 1")
        if self.lease_s <= 0:
            raise ValueError(f"WorkerSettings.lease_s={self.lease_s}; must be > 0")


@dataclass
class WorkerStats:
    batches: int = 0
    decided: int = 0
    retried: int = 0
    quarantined: int = 0
    bad_input: int = 0  # of the quarantined: error kind "input", quarantined on their first attempt
    stale: int = 0  # answers that arrived after another worker had taken the item over

    def line(self) -> str:
        return (
            f"{self.batches} batches: {self.decided} decided, {self.retried} retried, "
            f"{self.quarantined} quarantined ({self.bad_input} bad input), {self.stale} stale"
        )


class Worker:
    def __init__(self, queue: ModerationQueue, moderator: Moderator, settings: WorkerSettings | None = None):
        self.queue = queue
        self.moderator = moderator
        self.settings = settings or WorkerSettings()
        self.stats = WorkerStats()
        self._stopping = threading.Event()
        self._unavailable_streak = 0
        self._store_streak = 0

    @property
    def name(self) -> str:
        return self.settings.name

    def stop(self) -> None:
        """Finish the batch in hand, then return from `run()`."""
        self._stopping.set()

    def run(self, handle_signals: bool = True) -> WorkerStats:
        previous = self._install_signal_handlers() if handle_signals else {}
        log.info("worker %s: started on %r (batch %d)", self.name, self.queue, self.settings.batch_size)
        last_progress = time.monotonic()
        try:
            while not self._stopping.is_set():
                try:
                    items = self.queue.claim(self.name, self.settings.batch_size, self.settings.lease_s)
                    if items:
                        self.process(items)
                    elif self.settings.exit_when_empty and self._drained():
                        break
                    else:
                        self._stopping.wait(self.settings.idle_poll_s)
                except QueueStoreError as error:
                    # The batch in hand stays leased and is claimed again when its lease runs out.
                    self._back_off(f"queue unavailable: {error}")
                    continue
                self._store_streak = 0
                if time.monotonic() - last_progress >= self.settings.progress_every_s:
                    log.info("worker %s: %s", self.name, self.stats.line())
                    last_progress = time.monotonic()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        log.info("worker %s: stopped; %s", self.name, self.stats.line())
        return self.stats

    def _install_signal_handlers(self) -> dict:
        if threading.current_thread() is not threading.main_thread():
            return {}  # Python delivers signals to the main thread only

        def on_signal(signum, _frame):
            log.info("worker %s: %s received; finishing the current batch", self.name, signal.Signals(signum).name)
            self.stop()

        return {signum: signal.signal(signum, on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}

    def _drained(self) -> bool:
        counts = self.queue.counts()
        return counts[Status.PENDING] == 0 and counts[Status.LEASED] == 0

    # -- one batch -------------------------------------------------------------------

    def process(self, items: Sequence[Item]) -> None:
        self.stats.batches += 1
        for kind in dict.fromkeys(item.kind for item in items):
            self._moderate([item for item in items if item.kind == kind])

    def _moderate(self, items: Sequence[Item]) -> None:
        kind = items[0].kind
        try:
            results = self.moderator.moderate(kind, [item.payload for item in items])
            if len(results) != len(items):
                raise InferenceError(f"route answered {len(results)} results for {len(items)} items")
        except (ServerUnavailableError, ModelNotReadyError) as error:
            for item in items:
                self._fail(item, f"route unavailable: {error}", ErrorKind.SERVER)
            self._back_off_after_unavailable()
            return
        except (InferenceError, InputValidationError) as error:  # timeouts included
            refused = isinstance(error, InputValidationError)
            if len(items) == 1:
                if refused:  # the server says this item, sent alone, is the caller's mistake
                    self._fail(items[0], f"route refused the item: {error}", ErrorKind.INPUT)
                else:
                    self._fail(items[0], f"route failed: {error}", ErrorKind.SERVER)
                return
            log.info(
                "worker %s: request for %d items %s (%s); retrying them one by one",
                self.name,
                len(items),
                "refused" if refused else "failed",
                error,
            )
            for item in items:
                self.queue.renew([item.id], self.name, self.settings.lease_s)
                self._moderate([item])
            return
        self._unavailable_streak = 0
        self._record(items, results)

    def _record(self, items: Sequence[Item], results: Sequence) -> None:
        verdicts = []
        for item, result in zip(items, results, strict=True):
            if result.decision in DECISIONS:
                verdicts.append(Verdict(item.id, result.decision, result.audit_json))
            else:  # "error"; the client rejects any other value as a failed request
                self._fail_judgement(item, result)
        if verdicts:
            decided = self.queue.decide(verdicts, self.name)
            self.stats.decided += len(decided)
            self.stats.stale += len(verdicts) - len(decided)

    def _fail_judgement(self, item: Item, result) -> None:
        """The route answered "error" for this item; its audit's `error_kind` says whether
        the item is bad ("input": quarantine now) or a model failed for it ("model": retry)."""
        message = result.error or result.audit_json
        route_kind = result.error_kind
        if route_kind == ErrorKind.INPUT:
            self._fail(item, f"route answered error (input): {message}", ErrorKind.INPUT)
        elif route_kind == ErrorKind.MODEL:
            self._fail(item, f"route answered error (model): {message}", ErrorKind.MODEL)
        else:  # a route older than error kinds, or a kind this worker does not know: retrying is safe
            shown = "no error_kind" if route_kind is None else f"unknown error_kind {route_kind!r}"
            self._fail(item, f"route answered error ({shown}; retried as model): {message}", ErrorKind.MODEL)

    def _fail(self, item: Item, reason: str, kind: ErrorKind) -> None:
        outcome = self.queue.fail(item.id, self.name, reason, kind)
        if outcome is FailOutcome.RETRY:
            self.stats.retried += 1
        elif outcome is FailOutcome.QUARANTINED:
            self.stats.quarantined += 1
            self.stats.bad_input += kind is ErrorKind.INPUT
        else:
            self.stats.stale += 1

    def _back_off_after_unavailable(self) -> None:
        delay = min(30.0, self.settings.unavailable_backoff_s * 2**self._unavailable_streak)
        self._unavailable_streak += 1
        log.warning("worker %s: route unavailable; waiting %.1fs before claiming again", self.name, delay)
        self._stopping.wait(delay)

    def _back_off(self, reason: str) -> None:
        """The store failed (Redis down, disk full): wait, doubling up to 30 s, then claim again."""
        delay = min(30.0, self.settings.unavailable_backoff_s * 2**self._store_streak)
        self._store_streak += 1
        log.warning("worker %s: %s; waiting %.1fs before claiming again", self.name, reason, delay)
        self._stopping.wait(delay)
