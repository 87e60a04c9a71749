"""Window math over two scrapes: counter increases and rates, histogram quantiles, and
the rows `marquee top` shows. Pure functions of `Exposition`s; nothing here does I/O.

Counters are compared as Prometheus' `increase()` compares them, less its extrapolation:
the increase of a series is `after - before`, or `after` when the counter went down (the
server restarted). A series absent from the first scrape counts from 0: Marquee's route
series are made on first use, so their first value is all new. Quantiles follow
Prometheus' `histogram_quantile` over the buckets' increases (see `histogram_quantile`).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from marquee.top.scrape import Exposition, Labels, TopError

REQUESTS = "marquee_route_requests_total"
DURATION = "marquee_route_request_duration_seconds"
COMPUTE = "marquee_route_compute_seconds_total"
DEPENDENCY_READY = "marquee_route_dependency_ready"
TRITON_SUCCESS = "nv_inference_request_success"

QUEUE_DEPTH = "marquee_moderation_queue_depth"
QUEUE_OLDEST_PENDING_AGE = "marquee_moderation_queue_oldest_pending_age_seconds"
QUEUE_LEASES = "marquee_moderation_queue_leases_in_flight"
QUEUE_QUARANTINED = "marquee_moderation_queue_quarantined_items"
QUEUE_DECISIONS = "marquee_moderation_queue_decisions_total"
QUEUE_REVIEW_BACKLOG = "marquee_moderation_queue_review_backlog"
QUEUE_STORE_UP = "marquee_moderation_queue_store_up"


@dataclass(frozen=True)
class Window:
    """Two scrapes of one endpoint, `before` taken first."""

    before: Exposition
    after: Exposition

    @property
    def seconds(self) -> float:
        return self.after.scraped_at - self.before.scraped_at

    def increases(self, name: str, **labels: str) -> dict[Labels, float]:
        """Each matching counter series' increase over the window, by its labels."""
        earlier = self.before.by_series()
        out = {}
        for sample in self.after.series(name, **labels):
            previous = earlier.get(sample.series)
            start = previous.value if previous is not None else 0.0
            out[sample.labels] = sample.value - start if sample.value >= start else sample.value
        return out

    def increase(self, name: str, **labels: str) -> float:
        """The matching counter series' increases, summed."""
        return sum(self.increases(name, **labels).values())

    def rate(self, name: str, **labels: str) -> float:
        """Per-second increase over the window."""
        if self.seconds <= 0:
            raise ValueError(f"the window must have a positive length, got {self.seconds} s")
        return self.increase(name, **labels) / self.seconds

    def bucket_increases(self, histogram: str, **labels: str) -> list[tuple[float, float]]:
        """(upper bound, increase) of the histogram's cumulative buckets over the window,
        summed across the matching series (as `sum by (le) (increase(..._bucket))`)."""
        by_bound: dict[float, float] = {}
        increases = self.increases(f"{histogram}_bucket", **labels)
        for series_labels, amount in increases.items():
            bound = dict(series_labels).get("le")
            if bound is None:
                continue
            upper = _bound(bound)
            by_bound[upper] = by_bound.get(upper, 0.0) + amount
        return sorted(by_bound.items())

    def quantile(self, q: float, histogram: str, **labels: str) -> float | None:
        """The q-quantile of the observations made during the window; None when none were."""
        return histogram_quantile(q, self.bucket_increases(histogram, **labels))


def _bound(text: str) -> float:
    return math.inf if text in ("+Inf", "Inf", "inf") else float(text)


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The q-quantile (0 <= q <= 1) of cumulative buckets `(upper bound, count)`, as
    Prometheus' `histogram_quantile` computes it: find the bucket where the rank
    `q * total` falls and interpolate linearly inside it, from the previous bucket's
    upper bound (0 for the first bucket) to its own. A rank in the `+Inf` bucket gives
    the highest finite bound. None (Prometheus: NaN) when there is no `+Inf` bucket, fewer
    than two buckets, or no observations. Counts that go down from one bucket to the next
    (scrapes that raced an observation) are raised to the running maximum first."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} must be between 0 and 1")
    ordered = sorted(buckets)
    if len(ordered) < 2 or ordered[-1][0] != math.inf:
        return None
    bounds = [bound for bound, _ in ordered]
    counts, highest = [], 0.0
    for _, count in ordered:
        highest = max(highest, count)
        counts.append(highest)
    total = counts[-1]
    if total <= 0:
        return None
    rank = q * total
    index = bisect.bisect_left(counts, rank)
    if index == len(bounds) - 1:
        return bounds[-2]
    if index == 0 and bounds[0] <= 0:
        return bounds[0]
    start = bounds[index - 1] if index > 0 else 0.0
    end = bounds[index]
    below = counts[index - 1] if index > 0 else 0.0
    in_bucket = counts[index] - below
    if in_bucket <= 0:  # rank 0 with the first buckets empty
        return start
    return start + (end - start) * (rank - below) / in_bucket


# -- what the view shows ---------------------------------------------------------------


@dataclass(frozen=True)
class RouteRow:
    """One route and surface over a window. Latencies in seconds; None when the window
    saw no request of this route and surface."""

    route: str
    surface: str
    requests_per_s: float
    p50_s: float | None
    p99_s: float | None
    degraded_pct: float | None
    degraded_by_reason: dict[str, float]  # reason -> requests per second
    errors_per_s: float
    errors_by_kind: dict[str, float]  # kind -> requests per second
    compute_per_s: float  # route instance busy seconds per second
    not_loaded: tuple[str, ...]  # composed models whose marquee_route_dependency_ready is 0
    # False while the route has answered no request since it loaded. Where a route checks
    # its models only when it serves, its gauges read 0 until then (see `route_rows`).
    served: bool = True
    refused_per_s: float = 0.0  # requests refused because the surface was over its quota


@dataclass(frozen=True)
class QueueRow:
    """The moderation queue as its endpoint's last scrape saw it (decisions over the window)."""

    store_up: bool
    backend: str
    depth: float | None = None
    oldest_pending_age_s: float | None = None
    leases_in_flight: float | None = None
    quarantined: dict[str, float] = field(default_factory=dict)  # error kind -> items
    review_backlog: float | None = None
    decisions_per_s: float | None = None

    @property
    def quarantined_total(self) -> float | None:
        return sum(self.quarantined.values()) if self.store_up else None


def check_marquee(exposition: Exposition, url: str) -> None:
    """Raise `TopError` unless `exposition` is Triton's /metrics with a Marquee route
    loaded, naming the series that are missing."""
    missing = []
    if not _declared(exposition, TRITON_SUCCESS):
        missing.append(f"{TRITON_SUCCESS} (Triton's own)")
    if not (_declared(exposition, DEPENDENCY_READY) or _declared(exposition, REQUESTS)):
        missing.append(f"{DEPENDENCY_READY} or {REQUESTS} (a Marquee route's)")
    if not missing:
        return
    hint = "expected Triton's metrics port (default 8002) with a Marquee route loaded"
    if _declared(exposition, QUEUE_STORE_UP):
        hint = "this looks like the moderation queue's endpoint: pass it as --queue-metrics"
    raise TopError(f"{url} is not Marquee's Triton metrics: missing {'; '.join(missing)} ({hint})")


def check_queue(exposition: Exposition, url: str) -> None:
    """Raise `TopError` unless `exposition` is the moderation queue's endpoint."""
    if not _declared(exposition, QUEUE_STORE_UP):
        hint = ""
        if _declared(exposition, TRITON_SUCCESS):
            hint = " (this looks like Triton's /metrics: pass it as --metrics-url)"
        raise TopError(
            f"{url} is not the moderation queue's metrics: missing {QUEUE_STORE_UP}{hint}; "
            "serve them with `marquee moderation metrics` or `marquee moderation worker --metrics-port N`"
        )


def _declared(exposition: Exposition, name: str) -> bool:
    return exposition.has(name) or name in exposition.types or name.removesuffix("_total") in exposition.types


def route_rows(window: Window) -> list[RouteRow]:
    """One row per route and surface that has been seen (ever: idle ones show 0/s), and
    one with surface '' for a loaded route that has served nothing yet; sorted.

    A route that has served nothing yet is marked (`served` False): where a route checks
    its composed models only when it serves, its `marquee_route_dependency_ready` gauges
    read 0 until its first request, so the view says so next to the models."""
    after = window.after
    seconds = window.seconds
    if seconds <= 0:
        raise ValueError(f"the window must have a positive length, got {seconds} s")
    not_loaded: dict[str, list[str]] = {}
    for sample in after.series(DEPENDENCY_READY):
        missing = not_loaded.setdefault(sample.label("route"), [])
        if sample.value < 1:
            missing.append(sample.label("model"))
    pairs = {
        (sample.label("route"), sample.label("surface"))
        for name in (REQUESTS, f"{DURATION}_count", COMPUTE)
        for sample in after.series(name)
    }
    seen_routes = {route for route, _ in pairs}
    pairs |= {(route, "") for route in not_loaded if route not in seen_routes}
    rows = []
    for route, surface in sorted(pairs):
        labels = {"route": route, "surface": surface} if surface else {"route": route}
        by_outcome = _by_label(window.increases(REQUESTS, **labels), "outcome", "reason")
        total = sum(sum(reasons.values()) for reasons in by_outcome.values()) if surface else 0.0
        degraded = by_outcome.get("degraded", {})
        errors = by_outcome.get("error", {})
        rows.append(
            RouteRow(
                route=route,
                surface=surface,
                requests_per_s=total / seconds,
                p50_s=window.quantile(0.5, DURATION, **labels) if surface else None,
                p99_s=window.quantile(0.99, DURATION, **labels) if surface else None,
                degraded_pct=100.0 * sum(degraded.values()) / total if total > 0 else None,
                degraded_by_reason=_per_second(degraded, seconds),
                errors_per_s=sum(errors.values()) / seconds,
                errors_by_kind=_per_second(errors, seconds),
                compute_per_s=window.increase(COMPUTE, **labels) / seconds if surface else 0.0,
                not_loaded=tuple(sorted(not_loaded.get(route, ()))),
                served=route in seen_routes,
                refused_per_s=sum(by_outcome.get("refused", {}).values()) / seconds,
            )
        )
    return rows


def _by_label(increases: dict[Labels, float], outer: str, inner: str) -> dict[str, dict[str, float]]:
    grouped: dict[str, dict[str, float]] = {}
    for labels, amount in increases.items():
        found = dict(labels)
        reasons = grouped.setdefault(found.get(outer, ""), {})
        key = found.get(inner, "")
        reasons[key] = reasons.get(key, 0.0) + amount
    return grouped


def _per_second(amounts: dict[str, float], seconds: float) -> dict[str, float]:
    return {key: amount / seconds for key, amount in sorted(amounts.items()) if amount > 0}


def queue_row(window: Window) -> QueueRow:
    """The queue's gauges from the last scrape, and its decisions per second over the window."""
    after = window.after
    up = after.series(QUEUE_STORE_UP)
    backend = up[0].label("backend") if up else "unknown"
    if not up or up[0].value < 1:
        return QueueRow(store_up=False, backend=backend)
    return QueueRow(
        store_up=True,
        backend=backend,
        depth=_gauge(after, QUEUE_DEPTH),
        oldest_pending_age_s=_gauge(after, QUEUE_OLDEST_PENDING_AGE),
        leases_in_flight=_gauge(after, QUEUE_LEASES),
        quarantined={s.label("error_kind"): s.value for s in after.series(QUEUE_QUARANTINED) if s.value > 0},
        review_backlog=_gauge(after, QUEUE_REVIEW_BACKLOG),
        decisions_per_s=window.rate(QUEUE_DECISIONS) if window.seconds > 0 else None,
    )


def _gauge(exposition: Exposition, name: str) -> float | None:
    return exposition.value(name) if exposition.has(name) else None


def totals(rows: Iterable[RouteRow]) -> tuple[float, float, float]:
    """Requests, errors and compute-seconds per second across every row."""
    rows = list(rows)
    return (
        sum(r.requests_per_s for r in rows),
        sum(r.errors_per_s for r in rows),
        sum(r.compute_per_s for r in rows),
    )
