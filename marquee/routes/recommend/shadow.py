"""Shadow scoring: a candidate ranker version scores a page's candidates off the critical path.

The page never waits for it: `offer` starts an asyncio task on the route's event loop and
returns at once. Each route instance allows at most `shadow_in_flight` such tasks (from
the experiment file); an offer beyond that is dropped and counted, never queued, so a
saturated server sheds the shadow work first. A shadow call also has its own deadline,
so a slow candidate frees its slot.

What is recorded: per-version ranker latency (`marquee_ranker_call_seconds{role="shadow"}`),
the agreement of the two rankings (top-k overlap with k = the page size, and Spearman's
rank correlation over every candidate), and, for a sampled share of pages, both rankings
as one JSON line for offline study.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Callable

import numpy as np
import triton_python_backend_utils as pb_utils
from agreement import spearman, top_k, top_k_overlap
from route_runtime import LabelledCounter, StageFailed

AGREEMENT_BUCKETS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0]
CORRELATION_BUCKETS = [-0.5, 0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0]
LOG_MAX_BYTES = 64 * 1024 * 1024  # then the log is rotated to <name>.1
LOGGED_IDS = 50  # of each ranking


class ShadowScorer:
    def __init__(
        self,
        route: str,
        downstream,
        ranker_model: str,
        budget_s: float,
        log_path: str,
        observe_call: Callable[[str, int, float], None],
    ):
        self.route = route
        self.downstream = downstream
        self.ranker_model = ranker_model
        self.budget_s = budget_s
        self.log_path = log_path
        self.observe_call = observe_call
        self._tasks: set[asyncio.Task] = set()
        self.pages = LabelledCounter(
            "marquee_shadow_pages_total",
            "pages offered to shadow scoring by outcome: scored, dropped (no room in flight), failed",
            route,
            ("outcome",),
        )
        # Keep the families referenced: Triton refuses metrics whose family was collected.
        self.families = [
            pb_utils.MetricFamily(name=name, description=description, kind=pb_utils.MetricFamily.HISTOGRAM)
            for name, description in (
                (
                    "marquee_shadow_top_k_overlap",
                    "share of the page's top k that the shadow ranker also puts in its top k",
                ),
                (
                    "marquee_shadow_rank_correlation",
                    "Spearman correlation of serving and shadow scores over a page's candidates",
                ),
            )
        ]
        self.in_flight_family = pb_utils.MetricFamily(
            name="marquee_shadow_in_flight",
            description="shadow scoring calls in flight in one route instance (bounded by the experiment file)",
            kind=pb_utils.MetricFamily.GAUGE,
        )
        labels = {"route": route}
        self.overlap = self.families[0].Metric(labels=labels, buckets=AGREEMENT_BUCKETS)
        self.correlation = self.families[1].Metric(labels=labels, buckets=CORRELATION_BUCKETS)
        self.in_flight_gauge = self.in_flight_family.Metric(labels={**labels, "instance": str(os.getpid())})

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def offer(self, experiment, features, ids: np.ndarray, scores: np.ndarray, serving_version: int, k: int) -> bool:
        """Start shadow scoring of this page if there is room; False (and counted) if dropped."""
        if len(self._tasks) >= experiment.shadow_in_flight:
            self.pages.add(1, outcome="dropped")
            return False
        log_it = random.random() < experiment.shadow_log_share
        task = asyncio.ensure_future(self._score(experiment.shadow, features, ids, scores, serving_version, k, log_it))
        self._tasks.add(task)
        self.in_flight_gauge.set(len(self._tasks))
        task.add_done_callback(self._done)
        return True

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        self.in_flight_gauge.set(len(self._tasks))

    async def _score(self, version, features, ids, scores, serving_version, k, log_it) -> None:
        categorical, dense = features
        inputs = [pb_utils.Tensor("categorical", categorical), pb_utils.Tensor("dense", dense)]
        started = time.perf_counter()
        try:
            outputs = await self.downstream.call(self.ranker_model, inputs, ["probability"], self.budget_s, version)
        except StageFailed as failure:
            self.pages.add(1, outcome="failed")
            pb_utils.Logger.log_verbose(f"{self.route}: shadow ranker version {version}: {failure}")
            return
        except Exception as error:  # noqa: BLE001 - nothing in shadow scoring may reach a page
            self.pages.add(1, outcome="failed")
            pb_utils.Logger.log_warn(f"{self.route}: shadow scoring failed: {error!r}")
            return
        self.observe_call("shadow", version, time.perf_counter() - started)
        shadow_scores = outputs["probability"][:, 0]
        overlap = top_k_overlap(ids, scores, shadow_scores, k)
        correlation = spearman(scores, shadow_scores)
        self.overlap.observe(overlap)
        self.correlation.observe(correlation)
        self.pages.add(1, outcome="scored")
        if log_it:
            user_id = int(categorical[0, 0])
            self._log(user_id, ids, scores, shadow_scores, serving_version, version, k, overlap, correlation)

    def _log(self, user_id, ids, scores, shadow_scores, serving_version, version, k, overlap, correlation) -> None:
        record = {
            "at": round(time.time(), 3),
            "route": self.route,
            "user_id": user_id,
            "serving_version": serving_version,
            "shadow_version": version,
            "k": int(k),
            "top_k_overlap": round(overlap, 4),
            "spearman": round(correlation, 4),
            "serving": [int(i) for i in top_k(ids, scores, LOGGED_IDS)],
            "shadow": [int(i) for i in top_k(ids, shadow_scores, LOGGED_IDS)],
        }
        try:
            if os.path.exists(self.log_path) and os.path.getsize(self.log_path) > LOG_MAX_BYTES:
                os.replace(self.log_path, self.log_path + ".1")
            with open(self.log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as error:
            pb_utils.Logger.log_warn(f"{self.route}: shadow sample not logged to {self.log_path}: {error}")
