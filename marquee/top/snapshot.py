"""Scrape the endpoints, keep the previous scrape, and turn each pair into a `Snapshot`:
what one frame of `marquee top` shows."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from marquee.top import rates
from marquee.top.scrape import Exposition, fetch


@dataclass(frozen=True)
class Snapshot:
    """The rows of one refresh window."""

    metrics_url: str
    seconds: float
    rows: list[rates.RouteRow]
    queue_url: str | None = None
    queue: rates.QueueRow | None = None
    taken_at: float = field(default_factory=time.time)  # wall clock, for the title

    def row(self, route: str, surface: str) -> rates.RouteRow | None:
        for row in self.rows:
            if row.route == route and row.surface == surface:
                return row
        return None


class Scraper:
    """Scrapes Triton's /metrics (and the queue's endpoint, if given) and checks that they
    are Marquee's. `tick()` scrapes once and returns the Snapshot of the window since the
    previous tick (None on the first); a failed scrape raises `TopError` and the next tick
    starts a new window."""

    def __init__(
        self,
        metrics_url: str,
        queue_url: str | None = None,
        timeout_s: float = 5.0,
        fetcher: Callable[[str, float], Exposition] = fetch,
    ):
        self.metrics_url = metrics_url
        self.queue_url = queue_url
        self.timeout_s = timeout_s
        self._fetch = fetcher
        self._previous: tuple[Exposition, Exposition | None] | None = None

    def scrape(self) -> tuple[Exposition, Exposition | None]:
        triton = self._fetch(self.metrics_url, self.timeout_s)
        rates.check_marquee(triton, self.metrics_url)
        queue = None
        if self.queue_url:
            queue = self._fetch(self.queue_url, self.timeout_s)
            rates.check_queue(queue, self.queue_url)
        return triton, queue

    def tick(self) -> Snapshot | None:
        previous, self._previous = self._previous, None
        current = self.scrape()
        self._previous = current
        if previous is None:
            return None
        return snapshot_of(self.metrics_url, self.queue_url, previous, current)


def snapshot_of(
    metrics_url: str,
    queue_url: str | None,
    before: tuple[Exposition, Exposition | None],
    after: tuple[Exposition, Exposition | None],
) -> Snapshot:
    window = rates.Window(before[0], after[0])
    queue = None
    if before[1] is not None and after[1] is not None:
        queue = rates.queue_row(rates.Window(before[1], after[1]))
    return Snapshot(metrics_url, window.seconds, rates.route_rows(window), queue_url, queue)


def take_snapshot(
    metrics_url: str,
    queue_url: str | None = None,
    interval_s: float = 2.0,
    timeout_s: float = 5.0,
    sleep: Callable[[float], None] | None = None,
) -> Snapshot:
    """Two scrapes `interval_s` apart, and the window between them."""
    scraper = Scraper(metrics_url, queue_url, timeout_s)
    scraper.tick()
    (sleep or time.sleep)(interval_s)
    snapshot = scraper.tick()
    assert snapshot is not None
    return snapshot
