"""Prometheus metrics of the moderation queue and its worker, on an endpoint of their own.

The queue is not inside Triton, so its series cannot go on Triton's /metrics. A
collector reads the store on every scrape (`ModerationQueue.snapshot()`: one SQL read
transaction for SQLite, one Lua script for Redis Streams), so the numbers are the
store's, shared by every worker, not one process's view:

- `marquee_moderation_queue_depth` (gauge): items pending, i.e. waiting for a worker,
  those waiting out a retry backoff included.
- `marquee_moderation_queue_oldest_pending_age_seconds` (gauge): the classification lag,
  how long the longest-waiting pending item has waited since it was enqueued (a replayed
  item keeps its first enqueue time); 0 when nothing is pending.
- `marquee_moderation_queue_leases_in_flight` (gauge): items leased to a worker now (an
  expired lease counts until another worker takes the item over).
- `marquee_moderation_queue_quarantined_items{error_kind}` (gauge): items in quarantine
  now, by `ErrorKind` (input, model, server, lease, unknown); a replay lowers it.
- `marquee_moderation_queue_decisions_total{decision}` (counter): decisions recorded
  (allow, review, block). Decisions are never removed, so it only grows.
- `marquee_moderation_queue_review_backlog` (gauge): decided "review" items. The queue
  has no "reviewed" state (human review happens outside it), so the backlog is defined
  as every item the models sent to review.
- `marquee_moderation_queue_store_up{backend}` (gauge): 1 when this scrape read the store
  (backend sqlite or redis), 0 when it failed; the other queue series are then absent.
- `marquee_moderation_queue_read_duration_seconds` (gauge): how long this scrape's read
  of the store took.

A worker started with `--metrics-port` serves those and its own counters (since it started):
`marquee_moderation_worker_batches_total` and
`marquee_moderation_worker_items_total{outcome}` (decided, retried, quarantined, stale).

Labels take only the fixed values above; no item ids, worker names or store URLs (a
Redis URL may hold a password). Several workers on one store export the same queue
series, so the recording rules take `max` across instances
(marquee/observability/rules.py).

Cost of a scrape: SQLite counts the items, quarantine and decision tables (indexed by
status; the decision count is a scan of the decisions table). Redis reads its counters,
the quarantine hash and up to `SNAPSHOT_SCAN_LIMIT` entries in each place a pending item
waits. Both endpoints bind 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from marquee.moderation.queue import DECISIONS, ErrorKind, ModerationQueue, QueueSnapshot, Status

log = logging.getLogger(__name__)

DEPTH = "marquee_moderation_queue_depth"
OLDEST_PENDING_AGE = "marquee_moderation_queue_oldest_pending_age_seconds"
LEASES_IN_FLIGHT = "marquee_moderation_queue_leases_in_flight"
QUARANTINED = "marquee_moderation_queue_quarantined_items"
DECISIONS_TOTAL = "marquee_moderation_queue_decisions_total"
REVIEW_BACKLOG = "marquee_moderation_queue_review_backlog"
STORE_UP = "marquee_moderation_queue_store_up"
READ_DURATION = "marquee_moderation_queue_read_duration_seconds"
WORKER_BATCHES = "marquee_moderation_worker_batches_total"
WORKER_ITEMS = "marquee_moderation_worker_items_total"
WORKER_OUTCOMES = ("decided", "retried", "quarantined", "stale")

DEFAULT_METRICS_ADDRESS = "127.0.0.1"


def _counter_base(name: str) -> str:
    """prometheus_client adds `_total` to a counter family's name itself."""
    return name.removesuffix("_total")


def backend_of(queue: ModerationQueue) -> str:
    from marquee.moderation.queue.sqlite import SqliteQueue

    return "sqlite" if isinstance(queue, SqliteQueue) else "redis"


def snapshot_families(snapshot: QueueSnapshot) -> list:
    """The queue series of one snapshot."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    depth = GaugeMetricFamily(DEPTH, "Moderation items pending (waiting for a worker, retry backoffs included)")
    depth.add_metric([], snapshot.counts[Status.PENDING])
    lag = GaugeMetricFamily(
        OLDEST_PENDING_AGE,
        "Seconds the longest-waiting pending moderation item has waited since it was enqueued (0 when none)",
    )
    lag.add_metric([], snapshot.oldest_pending_age_s)
    leases = GaugeMetricFamily(LEASES_IN_FLIGHT, "Moderation items leased to a worker now")
    leases.add_metric([], snapshot.counts[Status.LEASED])
    quarantined = GaugeMetricFamily(
        QUARANTINED, "Moderation items in quarantine now, by error kind", labels=["error_kind"]
    )
    for kind in ErrorKind:
        quarantined.add_metric([kind.value], snapshot.quarantined_by_kind[kind])
    decisions = CounterMetricFamily(
        _counter_base(DECISIONS_TOTAL), "Moderation decisions recorded, by decision", labels=["decision"]
    )
    for decision in DECISIONS:
        decisions.add_metric([decision], snapshot.decisions_by_decision[decision])
    backlog = GaugeMetricFamily(
        REVIEW_BACKLOG, "Moderation items decided 'review' (the queue keeps no reviewed state: all of them)"
    )
    backlog.add_metric([], snapshot.decisions_by_decision["review"])
    return [depth, lag, leases, quarantined, decisions, backlog]


class QueueCollector:
    """Reads the store on each scrape. `open_store` is called in the scraping thread, on
    the first scrape and again after a failed one (a SQLite connection belongs to the
    thread that opened it; `serve` answers every scrape from one thread)."""

    def __init__(self, open_store: Callable[[], ModerationQueue]):
        self._open_store = open_store
        self._queue: ModerationQueue | None = None
        self._backend = "unknown"

    def collect(self) -> Iterator:
        from prometheus_client.core import GaugeMetricFamily

        started = time.perf_counter()
        try:
            if self._queue is None:
                self._queue = self._open_store()
                self._backend = backend_of(self._queue)
            families = snapshot_families(self._queue.snapshot())
        except Exception as error:  # noqa: BLE001 - a scrape must answer, with store_up 0
            log.warning("queue metrics: cannot read the store: %s", error)
            families = []
            self._drop()
        up = GaugeMetricFamily(
            STORE_UP, "1 if this scrape read the moderation queue's store, else 0", labels=["backend"]
        )
        up.add_metric([self._backend], 1.0 if families else 0.0)
        took = GaugeMetricFamily(READ_DURATION, "Seconds this scrape took to read the moderation queue's store")
        took.add_metric([], time.perf_counter() - started)
        yield from families
        yield up
        yield took

    def _drop(self) -> None:
        if self._queue is not None:
            try:
                self._queue.close()
            except Exception:  # noqa: BLE001 - already broken
                pass
        self._queue = None

    def close(self) -> None:
        self._drop()


class WorkerCollector:
    """One worker's own counters (`Worker.stats`), since it started."""

    def __init__(self, worker) -> None:
        self._worker = worker

    def collect(self) -> Iterator:
        from prometheus_client.core import CounterMetricFamily

        stats = self._worker.stats
        batches = CounterMetricFamily(_counter_base(WORKER_BATCHES), "Batches this moderation worker has processed")
        batches.add_metric([], stats.batches)
        items = CounterMetricFamily(
            _counter_base(WORKER_ITEMS),
            "Items this moderation worker has finished an attempt on, by outcome",
            labels=["outcome"],
        )
        for outcome in WORKER_OUTCOMES:
            items.add_metric([outcome], getattr(stats, outcome))
        yield batches
        yield items


def registry_for(queue_opener: Callable[[], ModerationQueue], worker=None):
    """A registry holding only Marquee's collectors (no process or Python GC series)."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueueCollector(queue_opener))
    if worker is not None:
        registry.register(WorkerCollector(worker))
    return registry


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        log.debug("metrics: " + format, *args)


class _Server(WSGIServer):
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


@dataclass
class MetricsServer:
    """A running metrics endpoint; `stop()` ends it."""

    address: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def serve(registry, port: int, address: str = DEFAULT_METRICS_ADDRESS) -> MetricsServer:
    """Serve `registry` on http://address:port/metrics (port 0: a free one) from one
    background thread, so scrapes run one at a time in the same thread."""
    from prometheus_client import make_wsgi_app

    from marquee.server.security import check_bind_address, is_loopback

    address = check_bind_address(address)
    server_class = _Server6 if ":" in address else _Server
    server = make_server(address, port, make_wsgi_app(registry), server_class=server_class, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="marquee-metrics", daemon=True)
    thread.start()
    running = MetricsServer(address, server.server_address[1], server, thread)
    if not is_loopback(address):
        log.warning("moderation metrics bind %s: reachable from other hosts, not only this one", address)
    log.info("moderation metrics on %s", running.url)
    return running
