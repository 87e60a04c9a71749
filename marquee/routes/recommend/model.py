"""The `recommend` route as a Triton Python (BLS) model.

Why BLS here and an ensemble for retrieval: retrieval is a straight pipe (user tower ->
candidate search), which a Triton ensemble runs with no Python in between. This model
needs control flow an ensemble cannot express: per-stage deadlines, a fallback when the
ranker fails or is slow, a blocklist that changes at run time, and rules that depend on
earlier results. The page is never an error because of a downstream model: it degrades
to retrieval order (or popularity, if retrieval fails) with `degraded=true` and a
`degraded_reason`. A caller's mistake is INVALID_ARG; see route_runtime.py.

Experiments (experiment.py, the file re-read while serving): each user's cohort picks the
ranker version that scores the page; a shadow version may score the same candidates off
the critical path (shadow.py); the treatment's guardrails send everyone back to control
when broken. The response and every route metric carry the cohort.
"""

from __future__ import annotations

import os
import random
import sys
import time

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import route_logic  # noqa: E402 - needs the path above
from experiment import (  # noqa: E402
    COHORTS,
    CONTROL,
    TREATMENT,
    ExperimentFile,
    GuardrailWindow,
    PageOutcome,
    RollbackRecord,
    assign_cohort,
    ranker_version,
)
from route_logic import (  # noqa: E402
    Blocklist,
    FeatureTables,
    apply_rules,
    filter_steps,
    parse_request,
    ranker_inputs,
    retrieval_as_scores,
)
from route_runtime import (  # noqa: E402
    DURATION_BUCKETS,
    Dependencies,
    Downstream,
    LabelledCounter,
    RouteCall,
    RouteInputError,
    RouteObserver,
    RouteParameters,
    StageClock,
    StageFailed,
    answer_each,
    request_parameters,
)
from shadow import ShadowScorer  # noqa: E402
from surfaces import load_surfaces  # noqa: E402

STAGES = ("retrieve", "filter", "rank", "rules")  # then "total": the stage_ms output
INPUTS = ("user_id", "region", "history", "context", "n")
GUARDRAIL_CHECK_S = 1.0  # how often an instance judges the treatment's window


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        params = RouteParameters.from_args(args)
        self.name = params.route
        self.tables = FeatureTables.load(os.path.join(params.folder, "features.npz"))
        self.blocklist = Blocklist(params.file("blocklist", "blocklist.txt"))
        self.retrieve_model = params.text("retrieve_model")
        self.ranker_model = params.text("ranker_model")
        self.budget_s = {stage: params.budget_s(stage) for stage in ("retrieve", "rank", "rules", "total")}
        self.max_per_genre = params.integer("max_per_genre", minimum=1)
        self.freshness_boost = params.number("freshness_boost")
        self.freshness_years = params.number("freshness_years", minimum=1e-6)
        self.max_n = params.integer("max_n", minimum=1)
        self.max_history = params.integer("max_history", minimum=0)
        self.tower_history = params.integer("tower_history", minimum=1)
        self.fallback_size = params.integer("top_k", minimum=1)
        self.rank_candidates = params.integer("rank_candidates", minimum=1)
        self.downstream = Downstream()
        self.dependencies = Dependencies(self.name, params.composed_models())
        # Served on Triton's /metrics next to its own nv_* series, so dashboards and the
        # benchmark can tell a fast page from a fast *degraded* page.
        # Keep the family referenced: Triton refuses metrics whose family was collected.
        self.pages_family = pb_utils.MetricFamily(
            name="marquee_recommend_pages_total",
            description="recommend pages served, by whether a cheaper order was used",
            kind=pb_utils.MetricFamily.COUNTER,
        )
        self.pages_metric = {
            flag: self.pages_family.Metric(labels={"route": self.name, "degraded": str(flag).lower()})
            for flag in (False, True)
        }
        self._init_experiments(params)
        self.observer = RouteObserver(
            self.name,
            load_surfaces(params.file("surfaces")),
            STAGES,
            COHORTS,
            self._watch_guardrails,
            instances=params.instance_count(),
        )
        # Candidates left after each filter step (summed; divide by pages for the average).
        self.candidates = LabelledCounter(
            "marquee_recommend_candidates_total",
            "recommend candidates surviving each step: retrieved, licensed, unwatched, unblocked, ranked",
            self.name,
            ("surface", "step"),
        )

    def _init_experiments(self, params: RouteParameters) -> None:
        experiments_path = params.file("experiments", "experiments.yaml")
        self.experiments = ExperimentFile(experiments_path)
        self.rollback = RollbackRecord(experiments_path + ".rollback.json")
        self.guardrail_window = GuardrailWindow()
        self._next_guardrail_check = 0.0
        self._logged_experiment_error: str | None = None
        self.rollbacks = LabelledCounter(
            "marquee_experiment_rollbacks_total",
            "experiments a route instance rolled back because the treatment broke a guardrail",
            self.name,
            ("guardrail",),
        )
        self.ranker_calls_family = pb_utils.MetricFamily(
            name="marquee_ranker_call_seconds",
            description="recommend's ranker calls by role (serve, shadow) and ranker version",
            kind=pb_utils.MetricFamily.HISTOGRAM,
        )
        self._ranker_calls: dict[tuple[str, int], object] = {}
        self.shadow = ShadowScorer(
            self.name,
            self.downstream,
            self.ranker_model,
            params.number("shadow_deadline_ms", 250.0, minimum=1.0) / 1000.0,
            params.file("shadow_log", "shadow_samples.jsonl"),
            self._observe_ranker_call,
        )

    async def execute(self, requests: list) -> list:
        # A coroutine: the Python backend runs it on its event loop, so each downstream
        # call can be awaited with a deadline and abandoned when its budget is spent.
        return await answer_each(requests, self._answer, self.name, self.observer)

    # -- one page --------------------------------------------------------------

    async def _answer(self, request, call: RouteCall):
        page = self._read(request)
        clock = call.clock
        experiment = self.experiments.current()
        call.cohort = self._cohort(request, page.user_id, experiment)
        version = ranker_version(call.cohort, experiment)
        if self.dependencies.missing():
            call.degrade("dependency", self.dependencies.reason())

        retrieved = True
        with clock.stage("retrieve"):
            try:
                ids, retrieval_scores = await self._retrieve(page, clock)
            except StageFailed as failure:
                retrieved = False
                self._warn(call.degrade("retrieve", f"retrieval: {failure}; popularity order"))
                ids = self.tables.popularity_order[: self.fallback_size]
                # Popularity rank as a gently decaying score, so rules can still reorder a little.
                retrieval_scores = -np.arange(len(ids), dtype=np.float32) / 50.0

        with clock.stage("filter"):
            blocked = self.blocklist.ids()
            if self.blocklist.last_error:
                self._warn(self.blocklist.last_error)
            ids, retrieval_scores, survivors = filter_steps(
                ids, retrieval_scores, self.tables, page.region, page.history, blocked
            )

        with clock.stage("rank"):
            scores = None
            if retrieved:
                # Candidates arrive best-first; only the head is worth the ranker's time.
                ids, retrieval_scores = ids[: self.rank_candidates], retrieval_scores[: self.rank_candidates]
                if len(ids):
                    inputs = ranker_inputs(page, ids, self.tables)
                    try:
                        scores = await self._rank(inputs, clock, version)
                        survivors["ranked"] = len(ids)
                    except StageFailed as failure:
                        self._warn(call.degrade("rank", f"ranking: {failure}; retrieval order"))
                    if scores is not None and experiment is not None and experiment.shadow is not None:
                        if random.random() < experiment.shadow_share:
                            self.shadow.offer(experiment, inputs, ids, scores, version, page.n)
            if scores is None:
                scores = retrieval_as_scores(retrieval_scores)

        with clock.stage("rules"):
            item_ids, final_scores, genres = apply_rules(
                ids, scores, self.tables, page.n, self.max_per_genre, self.freshness_boost, self.freshness_years
            )
        for step, count in survivors.items():
            self.candidates.add(count, surface=call.surface, step=step)
        reasons = [message for _, message in call.degraded]
        return self._page(item_ids, final_scores, genres, reasons, clock, call.cohort)

    # -- experiments --------------------------------------------------------------

    def _cohort(self, request, user_id: int, experiment) -> str:
        if self.experiments.last_error and self.experiments.last_error != self._logged_experiment_error:
            self._logged_experiment_error = self.experiments.last_error
            self._warn(self.experiments.last_error)
        if self.experiments.changed:
            self.guardrail_window.clear()
        rolled_back = self.rollback.reason(experiment) is not None
        forced = request_parameters(request).get("cohort")
        if forced is None:
            return assign_cohort(user_id, experiment, rolled_back)
        # A named cohort: QA, and the A/B readout's counterfactual pages.
        if forced not in (CONTROL, TREATMENT):
            raise RouteInputError(f"parameter `cohort`={forced!r}; allowed: {CONTROL}, {TREATMENT}")
        if experiment is None or experiment.treatment is None:
            raise RouteInputError(f"parameter `cohort`={forced!r}: no experiment with a treatment is running")
        return CONTROL if rolled_back else forced

    def _watch_guardrails(self, call: RouteCall, outcome: str, seconds: float) -> None:
        if call.cohort != TREATMENT:
            return
        now = time.monotonic()
        self.guardrail_window.add(PageOutcome(now, seconds, outcome))
        if now < self._next_guardrail_check:
            return
        self._next_guardrail_check = now + GUARDRAIL_CHECK_S
        experiment = self.experiments.current()
        if experiment is None or not experiment.running or self.rollback.reason(experiment):
            return
        breach = self.guardrail_window.breach(experiment.guardrails, now)
        if breach:
            self.rollbacks.add(1, guardrail=breach.split(" ", 1)[0])
            self.guardrail_window.clear()
            pb_utils.Logger.log_error(
                f"{self.name}: experiment {experiment.name!r} rolled back, everyone served by ranker version "
                f"{experiment.control}: {breach}"
            )
            try:
                self.rollback.write(experiment, f"guardrail: {breach}")
            except OSError as error:  # a read-only repository: this instance still rolls back
                pb_utils.Logger.log_error(f"{self.name}: rollback record not written, other instances go on: {error}")

    def _observe_ranker_call(self, role: str, version: int, seconds: float) -> None:
        key = (role, version)
        if key not in self._ranker_calls:
            labels = {"route": self.name, "role": role, "version": str(version)}
            self._ranker_calls[key] = self.ranker_calls_family.Metric(labels=labels, buckets=DURATION_BUCKETS)
        self._ranker_calls[key].observe(seconds)

    def _read(self, request) -> route_logic.RouteRequest:
        tensors = {name: pb_utils.get_input_tensor_by_name(request, name) for name in INPUTS}
        missing = [name for name, tensor in tensors.items() if tensor is None]
        if missing:
            raise RouteInputError(f"missing input(s) {missing}; required: {list(INPUTS)}")
        try:
            return parse_request(
                *(tensors[name].as_numpy() for name in INPUTS), max_n=self.max_n, max_history=self.max_history
            )
        except route_logic.RouteInputError as error:
            raise RouteInputError(str(error)) from None

    def _page(self, item_ids, scores, genres, reasons: list[str], clock: StageClock, cohort: str):
        degraded = bool(reasons)
        self.pages_metric[degraded].increment(1)
        stage_ms = np.array([clock.ms.get(s, 0.0) for s in STAGES] + [clock.elapsed_s() * 1000.0], np.float32)
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor("item_ids", item_ids.astype(np.int64)),
                pb_utils.Tensor("scores", scores.astype(np.float32)),
                pb_utils.Tensor("genres", genres.astype(np.int64)),
                pb_utils.Tensor("degraded", np.array([degraded], dtype=bool)),
                pb_utils.Tensor("degraded_reason", np.array(["; ".join(reasons).encode()], dtype=np.object_)),
                pb_utils.Tensor("stage_ms", stage_ms),
                pb_utils.Tensor("cohort", np.array([cohort.encode()], dtype=np.object_)),
            ]
        )

    # -- downstream models ------------------------------------------------------

    def _deadline_s(self, stage: str, clock: StageClock) -> float:
        """The stage's own budget, cut so that the rules keep their reserve before `total`."""
        left = clock.remaining_s(self.budget_s["total"]) - self.budget_s["rules"]
        if left <= 0:
            raise StageFailed(stage, f"skipped: {self.budget_s['total'] * 1000:.0f} ms page budget spent")
        return min(self.budget_s[stage], left)

    async def _retrieve(self, page, clock: StageClock) -> tuple[np.ndarray, np.ndarray]:
        history = np.full((1, self.tower_history), -1, np.int64)
        recent = page.history[: self.tower_history]
        history[0, : len(recent)] = recent
        inputs = [
            pb_utils.Tensor("user_id", np.array([[page.user_id]], np.int64)),
            pb_utils.Tensor("region", np.array([[page.region]], np.int64)),
            pb_utils.Tensor("history", history),
        ]
        outputs = await self.downstream.call(
            self.retrieve_model, inputs, ["candidate_ids", "candidate_scores"], self._deadline_s("retrieve", clock)
        )
        return outputs["candidate_ids"][0], outputs["candidate_scores"][0]

    async def _rank(self, features: tuple[np.ndarray, np.ndarray], clock: StageClock, version: int) -> np.ndarray:
        categorical, dense = features
        inputs = [pb_utils.Tensor("categorical", categorical), pb_utils.Tensor("dense", dense)]
        deadline = self._deadline_s("rank", clock)
        started = time.perf_counter()
        outputs = await self.downstream.call(self.ranker_model, inputs, ["probability"], deadline, version=version)
        self._observe_ranker_call("serve", version, time.perf_counter() - started)
        return outputs["probability"][:, 0]

    def _warn(self, message: str) -> None:
        pb_utils.Logger.log_warn(f"{self.name}: {message}")
