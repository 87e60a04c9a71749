"""Typed clients for the `recommend` route: one call, one page of titles."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from clients.base import AsyncModelClient, ModelClient, Protocol
from marquee.specs.recommend import RECOMMEND, STAGES


@dataclass(frozen=True)
class RecommendedItem:
    item_id: int
    score: float
    genre: int


@dataclass(frozen=True)
class Recommendation:
    items: list[RecommendedItem]
    degraded: bool  # True when a stage failed or ran over budget and a cheaper order was used
    stage_ms: dict[str, float]  # server-side time per stage: retrieve, filter, rank, rules, total
    degraded_reason: str = ""  # why, when degraded: a late or failed stage, a model not loaded
    cohort: str = "none"  # experiment cohort: control, treatment, or none (no experiment running)

    @property
    def item_ids(self) -> list[int]:
        return [item.item_id for item in self.items]


def _inputs(user_id: int, region: int, history: Sequence[int], n: int, device: int, hour: int | None) -> dict:
    hour = datetime.now(UTC).hour if hour is None else hour
    return {
        "user_id": np.array([user_id], np.int64),
        "region": np.array([region], np.int64),
        "history": np.asarray(list(history), dtype=np.int64).reshape(-1),
        "context": np.array([device, hour], np.int64),
        "n": np.array([n], np.int32),
    }


def _result(outputs: dict[str, np.ndarray]) -> Recommendation:
    items = [
        RecommendedItem(int(i), float(s), int(g))
        for i, s, g in zip(outputs["item_ids"], outputs["scores"], outputs["genres"], strict=True)
    ]
    stage_ms = {name: float(v) for name, v in zip(STAGES, outputs["stage_ms"], strict=True)}
    reason = outputs["degraded_reason"].reshape(-1)[0]
    reason = reason.decode("utf-8") if isinstance(reason, bytes) else str(reason)
    cohort = outputs["cohort"].reshape(-1)[0]
    cohort = cohort.decode("utf-8") if isinstance(cohort, bytes) else str(cohort)
    return Recommendation(items, bool(outputs["degraded"][0]), stage_ms, reason, cohort)


def _parameters(cohort: str | None) -> dict | None:
    """`cohort`: serve this cohort's ranker whatever the user's hash says (QA, and the A/B
    readout's counterfactual pages); the route refuses it when no treatment is running."""
    return {"cohort": cohort} if cohort is not None else None


class RecommendClient(ModelClient):
    """`recommend(user_id, region, history, n=20)` -> Recommendation.

    history: recently watched item ids, most recent first (they are never recommended).
    device: 0 mobile, 1 TV, 2 web, 3 tablet; hour: 0-23 (default: now, UTC).
    model: another deployment of the same route (an A/B variant, say).
    """

    def __init__(
        self,
        url: str | None = None,
        protocol: Protocol = "grpc",
        timeout_s: float = 2.0,
        model: str = RECOMMEND.name,
        tls_ca: str | Path | None = None,
        surface: str | None = None,
    ):
        super().__init__(
            dataclasses.replace(RECOMMEND, name=model), url, protocol, timeout_s, tls_ca=tls_ca, surface=surface
        )

    def recommend(
        self,
        user_id: int,
        region: int,
        history: Sequence[int] = (),
        n: int = 20,
        device: int = 0,
        hour: int | None = None,
        cohort: str | None = None,
    ) -> Recommendation:
        return _result(self.infer(_parameters(cohort), **_inputs(user_id, region, history, n, device, hour)))


class AsyncRecommendClient(AsyncModelClient):
    """asyncio twin of `RecommendClient`."""

    def __init__(
        self,
        url: str | None = None,
        protocol: Protocol = "grpc",
        timeout_s: float = 2.0,
        model: str = RECOMMEND.name,
        tls_ca: str | Path | None = None,
        surface: str | None = None,
    ):
        super().__init__(
            dataclasses.replace(RECOMMEND, name=model), url, protocol, timeout_s, tls_ca=tls_ca, surface=surface
        )

    async def recommend(
        self,
        user_id: int,
        region: int,
        history: Sequence[int] = (),
        n: int = 20,
        device: int = 0,
        hour: int | None = None,
        cohort: str | None = None,
    ) -> Recommendation:
        return _result(await self.infer(_parameters(cohort), **_inputs(user_id, region, history, n, device, hour)))
