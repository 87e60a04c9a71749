"""The `recommend` route as a Triton Python (BLS) model.

Why BLS here and an ensemble for retrieval: retrieval is a straight pipe (user tower ->
candidate search), which a Triton ensemble runs with no Python in between. This model
needs control flow an ensemble cannot express: a per-stage time budget, a fallback when
the ranker fails or is slow, a blocklist that changes at run time, and rules that depend
on earlier results. The page is never an error because of a downstream model: it
degrades to retrieval order (or popularity, if retrieval fails) with `degraded=true`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from route_logic import (  # noqa: E402 - needs the path above
    Blocklist,
    FeatureTables,
    RouteInputError,
    apply_rules,
    filter_candidates,
    parse_request,
    ranker_inputs,
    retrieval_as_scores,
)


class StageFailed(Exception):
    """A downstream model failed or ran over its budget; the route degrades."""


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        self.tables = FeatureTables.load(os.path.join(version_dir, "features.npz"))
        self.blocklist = Blocklist(os.path.join(version_dir, params.get("blocklist", "blocklist.txt")))
        self.retrieve_model = params["retrieve_model"]
        self.ranker_model = params["ranker_model"]
        self.retrieve_budget_s = float(params["retrieve_budget_ms"]) / 1000
        self.rank_budget_s = float(params["rank_budget_ms"]) / 1000
        self.max_per_genre = int(params["max_per_genre"])
        self.freshness_boost = float(params["freshness_boost"])
        self.freshness_years = float(params["freshness_years"])
        self.max_n = int(params["max_n"])
        self.max_history = int(params["max_history"])
        self.tower_history = int(params["tower_history"])
        self.fallback_size = int(params["top_k"])
        self.rank_candidates = int(params["rank_candidates"])
        self.logger = pb_utils.Logger
        self._abandoned: set[asyncio.Future] = set()
        # Served on Triton's /metrics next to its own nv_* series, so dashboards and the
        # benchmark can tell a fast page from a fast *degraded* page.
        # Keep the family referenced: Triton refuses metrics whose family was collected.
        self.pages_family = pages = pb_utils.MetricFamily(
            name="marquee_recommend_pages_total",
            description="recommend pages served, by whether a cheaper order was used",
            kind=pb_utils.MetricFamily.COUNTER,
        )
        route = config["name"]
        self.pages_metric = {
            flag: pages.Metric(labels={"route": route, "degraded": str(flag).lower()}) for flag in (False, True)
        }

    async def execute(self, requests: list) -> list:
        # A coroutine: the Python backend runs it on its event loop, so each downstream
        # call can be awaited with a deadline and abandoned when its budget is spent.
        return list(await asyncio.gather(*(self._answer(request) for request in requests)))

    # -- one page --------------------------------------------------------------

    async def _answer(self, request):
        started = time.perf_counter()
        try:
            page = parse_request(
                *(
                    pb_utils.get_input_tensor_by_name(request, name).as_numpy()
                    for name in ("user_id", "region", "history", "context", "n")
                ),
                max_n=self.max_n,
                max_history=self.max_history,
            )
        except RouteInputError as error:
            return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(f"recommend: {error}"))

        stage_ms = np.zeros(5, np.float32)
        degraded = False
        clock = time.perf_counter()
        try:
            ids, retrieval_scores = await self._retrieve(page)
        except StageFailed as reason:
            self._warn(f"retrieval degraded to popularity: {reason}")
            degraded = True
            ids = self.tables.popularity_order[: self.fallback_size]
            # Popularity rank as a gently decaying score, so rules can still reorder a little.
            retrieval_scores = -np.arange(len(ids), dtype=np.float32) / 50.0
        stage_ms[0] = _ms_since(clock)

        clock = time.perf_counter()
        blocked = self.blocklist.ids()
        if self.blocklist.last_error:
            self._warn(self.blocklist.last_error)
        ids, retrieval_scores = filter_candidates(
            ids, retrieval_scores, self.tables, page.region, page.history, blocked
        )
        stage_ms[1] = _ms_since(clock)

        clock = time.perf_counter()
        scores = None
        if not degraded:
            # Candidates arrive best-first; only the head is worth the ranker's time.
            ids, retrieval_scores = ids[: self.rank_candidates], retrieval_scores[: self.rank_candidates]
        if not degraded and len(ids):
            try:
                scores = await self._rank(page, ids)
            except StageFailed as reason:
                self._warn(f"ranking degraded to retrieval order: {reason}")
                degraded = True
        if scores is None:
            scores = retrieval_as_scores(retrieval_scores)
        stage_ms[2] = _ms_since(clock)

        clock = time.perf_counter()
        item_ids, final_scores, genres = apply_rules(
            ids, scores, self.tables, page.n, self.max_per_genre, self.freshness_boost, self.freshness_years
        )
        stage_ms[3] = _ms_since(clock)
        stage_ms[4] = _ms_since(started)
        self.pages_metric[degraded].increment(1)
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor("item_ids", item_ids.astype(np.int64)),
                pb_utils.Tensor("scores", final_scores.astype(np.float32)),
                pb_utils.Tensor("genres", genres.astype(np.int64)),
                pb_utils.Tensor("degraded", np.array([degraded], dtype=bool)),
                pb_utils.Tensor("stage_ms", stage_ms),
            ]
        )

    # -- downstream models ------------------------------------------------------

    async def _retrieve(self, page) -> tuple[np.ndarray, np.ndarray]:
        history = np.full((1, self.tower_history), -1, np.int64)
        recent = page.history[: self.tower_history]
        history[0, : len(recent)] = recent
        inputs = [
            pb_utils.Tensor("user_id", np.array([[page.user_id]], np.int64)),
            pb_utils.Tensor("region", np.array([[page.region]], np.int64)),
            pb_utils.Tensor("history", history),
        ]
        outputs = await self._call(
            self.retrieve_model, inputs, ["candidate_ids", "candidate_scores"], self.retrieve_budget_s
        )
        return outputs["candidate_ids"][0], outputs["candidate_scores"][0]

    async def _rank(self, page, ids: np.ndarray) -> np.ndarray:
        categorical, dense = ranker_inputs(page, ids, self.tables)
        inputs = [pb_utils.Tensor("categorical", categorical), pb_utils.Tensor("dense", dense)]
        outputs = await self._call(self.ranker_model, inputs, ["probability"], self.rank_budget_s)
        return outputs["probability"][:, 0]

    async def _call(self, model: str, inputs: list, outputs: list[str], budget_s: float) -> dict[str, np.ndarray]:
        bls = pb_utils.InferenceRequest(
            model_name=model,
            inputs=inputs,
            requested_output_names=outputs,
            # Lets Triton drop the request if it is still queued when the budget is gone.
            timeout=int(budget_s * 1_000_000),
        )
        call = asyncio.ensure_future(bls.async_exec())
        # asyncio.wait, not wait_for: on timeout wait_for also waits for the cancelled call
        # to wind down, which for an in-flight BLS request means waiting for the slow model.
        done, _ = await asyncio.wait({call}, timeout=budget_s)
        if not done:
            self._abandoned.add(call)  # let it finish in the background, then drop it
            call.add_done_callback(self._abandoned.discard)
            raise StageFailed(f"{model} over its {budget_s * 1000:.0f} ms budget")
        try:
            response = call.result()
        except Exception as error:  # noqa: BLE001 - any BLS failure degrades the page
            raise StageFailed(f"{model} failed: {error}") from None
        if response.has_error():
            raise StageFailed(f"{model} failed: {response.error().message()}")
        return {name: pb_utils.get_output_tensor_by_name(response, name).as_numpy() for name in outputs}

    def _warn(self, message: str) -> None:
        self.logger.log_warn(f"recommend: {message}")


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
