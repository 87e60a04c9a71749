"""The A/B readout, checked against the truth: simulated users click on real served pages.

In the synthetic world (export/ranker/data.py) every impression's true click probability
is known. For each simulated user the readout asks the running route for the user's page
(the cohort the hash assigns), draws clicks from the true probabilities, and reports each
cohort's CTR with an interval and the measured lift with its interval. It also asks for
the same user's page from the other cohort (request parameter `cohort`): with both pages
of every user, the true lift is the mean difference of their expected CTRs, which the
measured lift's interval should contain (about 95% of seeds).

Clicks: each impression is clicked with its true probability (no position bias), and the
page context matches what the route scores with (session depth at its mean).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from marquee.rollout.ab_stats import difference_interval, wilson_interval
from marquee.routes.recommend.experiment import CONTROL, TREATMENT

DEVICE_SHARES = (0.45, 0.3, 0.15, 0.1)  # as the synthetic log's
MEAN_SESSION_DEPTH = 2.0  # the route sends the standardised mean (0.0) of this feature
HISTORY_SENT = 20


@dataclass(frozen=True)
class Visit:
    user: int
    region: int
    history: tuple[int, ...]
    device: int
    hour: int


@dataclass(frozen=True)
class Page:
    cohort: str
    item_ids: list[int]
    degraded: bool


# (visit, cohort or None, page size) -> the served page
PageSource = Callable[[Visit, str | None, int], Page]


def draw_visits(catalogue, histories: np.ndarray, users: int, seed: int) -> list[Visit]:
    """Distinct users drawn uniformly, each with a device and an hour."""
    rng = np.random.default_rng(seed)
    world = catalogue.world
    chosen = rng.choice(len(world.user_region), users, replace=False)
    devices = rng.choice(len(DEVICE_SHARES), users, p=DEVICE_SHARES)
    hours = rng.integers(0, 24, users)
    visits = []
    for user, device, hour in zip(chosen, devices, hours, strict=True):
        history = histories[user]
        visits.append(
            Visit(
                int(user),
                int(world.user_region[user]),
                tuple(int(i) for i in history[history >= 0][:HISTORY_SENT]),
                int(device),
                int(hour),
            )
        )
    return visits


def expected_ctr(world, visit: Visit, item_ids: list[int]) -> np.ndarray:
    """True click probability of each item on a page shown to `visit`."""
    items = np.asarray(item_ids, np.int64)
    count = len(items)
    return world.click_probability(
        np.full(count, visit.user),
        items,
        np.full(count, visit.device),
        np.full(count, visit.hour),
        np.full(count, MEAN_SESSION_DEPTH),
    )


def readout(
    catalogue, visits: list[Visit], page_source: PageSource, page_size: int, seed: int, concurrency: int = 4
) -> dict:
    """Serve every visit (assigned page and counterfactual page), simulate clicks, report."""

    def serve(visit: Visit) -> tuple[Page, Page]:
        assigned = page_source(visit, None, page_size)
        if assigned.cohort not in (CONTROL, TREATMENT):
            raise ValueError(f"user {visit.user}: cohort {assigned.cohort!r}; is an A/B experiment running?")
        other = TREATMENT if assigned.cohort == CONTROL else CONTROL
        counterfactual = page_source(visit, other, page_size)
        if counterfactual.cohort != other:
            raise ValueError(
                f"user {visit.user}: asked for the {other} page, got {counterfactual.cohort!r}; "
                "was the experiment rolled back during the readout? (`marquee rollout status`)"
            )
        return assigned, counterfactual

    with ThreadPoolExecutor(concurrency) as pool:
        served = list(pool.map(serve, visits))
    rng = np.random.default_rng(seed)
    world = catalogue.world
    per_user = {CONTROL: [], TREATMENT: []}  # (clicks, impressions, expected clicks)
    true_difference, degraded = [], 0
    for visit, (assigned, counterfactual) in zip(visits, served, strict=True):
        probability = expected_ctr(world, visit, assigned.item_ids)
        clicks = int((rng.random(len(probability)) < probability).sum())
        per_user[assigned.cohort].append((clicks, len(probability), float(probability.sum())))
        pages = {
            assigned.cohort: probability,
            counterfactual.cohort: expected_ctr(world, visit, counterfactual.item_ids),
        }
        true_difference.append(_mean(pages[TREATMENT]) - _mean(pages[CONTROL]))
        degraded += assigned.degraded + counterfactual.degraded
    cohorts = {name: _cohort_summary(rows) for name, rows in per_user.items()}
    user_ctr = {name: np.array([c / n for c, n, _ in rows if n]) for name, rows in per_user.items()}
    lift = difference_interval(user_ctr[TREATMENT], user_ctr[CONTROL])
    true_lift = float(np.mean(true_difference))
    control_true = cohorts[CONTROL]["true_ctr"]
    return {
        "users": len(visits),
        "page_size": page_size,
        "seed": seed,
        "degraded_pages": degraded,
        "cohorts": cohorts,
        "lift": {
            "measured": lift.estimate,
            "ci95_low": lift.low,
            "ci95_high": lift.high,
            "true": true_lift,
            "true_in_interval": lift.contains(true_lift),
            "relative_measured": lift.estimate / cohorts[CONTROL]["ctr"] if cohorts[CONTROL]["ctr"] else None,
            "relative_true": true_lift / control_true if control_true else None,
        },
        "method": (
            "clicks drawn from each impression's true probability (synthetic world, no position bias); "
            "cohort CTR: clicks / impressions with a Wilson 95% interval; lift: difference of per-user CTR means "
            "(the user is the unit of randomisation) with Welch's normal 95% interval; true lift: mean over all "
            "users of expected CTR(treatment page) - expected CTR(control page), both pages served by the route"
        ),
    }


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else 0.0


def _cohort_summary(rows: list[tuple[int, int, float]]) -> dict:
    clicks = sum(c for c, _, _ in rows)
    impressions = sum(n for _, n, _ in rows)
    expected = sum(e for _, _, e in rows)
    interval = wilson_interval(clicks, impressions)
    return {
        "users": len(rows),
        "impressions": impressions,
        "clicks": clicks,
        "ctr": interval.estimate,
        "ctr_ci95": [interval.low, interval.high],
        "true_ctr": expected / impressions,
    }


def client_page_source(client) -> PageSource:
    """Pages from a running route through a `RecommendClient` (thread-safe gRPC client)."""

    def page(visit: Visit, cohort: str | None, page_size: int) -> Page:
        result = client.recommend(
            visit.user, visit.region, visit.history, page_size, visit.device, visit.hour, cohort=cohort
        )
        return Page(result.cohort, result.item_ids, result.degraded)

    return page
