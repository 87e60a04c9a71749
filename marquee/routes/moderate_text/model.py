"""The `moderate_text` route as a Triton Python (BLS) model.

Cheap filter first, model second: every text gets the lexical profanity score (one
batched call for the whole request); only texts whose score falls inside the policy's
ambiguous band are tokenised and sent to the MiniLM classifier (one more batched call).
The policy turns the scores into allow / review / block, and every text gets an audit
record naming the models, their versions, the scores, the thresholds and the policy.

Item-level problems give decision "error" for the texts concerned, never a failed
request, and the audit says which kind: `error_kind` "input" (empty, whitespace-only,
too long, invalid UTF-8: quarantine) or "model" (a stage failed, ran past its deadline
or is not loaded: retry). Only a malformed request (no `text`, too many texts, an
unknown `classifier_precision`) is a request error, INVALID_ARG.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cascade import (  # noqa: E402 - needs the path above
    INPUT_ERROR,
    LEXICAL_CATEGORY,
    MODEL_ERROR,
    StageRun,
    ambiguous,
    class_scores,
    decision_scores,
    encode_outputs,
    error_audit,
    judge,
    read_batch,
)
from live_policy import LivePolicies  # noqa: E402
from policy import decide, decision_category, shadow_verdict  # noqa: E402
from route_runtime import (  # noqa: E402
    Dependencies,
    Downstream,
    RouteCall,
    RouteInputError,
    RouteObserver,
    RouteParameters,
    StageFailed,
    answer_each,
    input_array,
    moderation_decisions_counter,
    request_parameters,
)
from surfaces import load_surfaces  # noqa: E402
from text_tokens import encode, load_tokenizer  # noqa: E402

PRECISION_PARAMETER = "classifier_precision"


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        params = RouteParameters.from_args(args)
        self.name = params.route
        # The policy in force and a shadow candidate, both re-read while serving (live_policy.py).
        self.policies = LivePolicies(params)
        self.tokenizer = load_tokenizer(params.file("tokenizer"), params.integer("max_tokens"))
        self.lexical_model = params.text("lexical_model")
        self.lexical_version = params.integer("lexical_version")
        self.classifiers = {"fp32": params.text("classifier_fp32_model"), "int8": params.text("classifier_int8_model")}
        self.classifier_version = params.integer("classifier_version")
        self.default_precision = params.text("default_precision")
        self.classes = params.text("classes").split(",")
        self.max_texts = params.integer("max_texts", minimum=1)
        self.max_chars = params.integer("max_chars", minimum=1)
        self.budget_s = {stage: params.budget_s(stage) for stage in ("lexical", "classifier")}
        self.downstream = Downstream()
        self.dependencies = Dependencies(self.name, params.composed_models())
        self.observer = RouteObserver(
            self.name, load_surfaces(params.file("surfaces")), ("moderate",), instances=params.instance_count()
        )
        self.decisions = moderation_decisions_counter(self.name)

    async def execute(self, requests: list) -> list:
        return await answer_each(requests, self._answer, self.name, self.observer)

    async def _answer(self, request, call: RouteCall):
        self.policies.refresh()
        items, precision = self._read_request(request)
        if self.dependencies.missing():
            call.degrade("dependency", self.dependencies.reason())
        policy, shadow_policy = self.policies.active, self.policies.shadow
        version = self._version_of(policy)
        with call.clock.stage("moderate"):
            results, stage2_texts = await self._moderate(items, precision, policy, version)
            shadow_scores = await self._shadow_scores(stage2_texts, shadow_policy, version, precision)
        for index, (decision, audit) in enumerate(results):
            category = decision_category(decision, audit, self.policies.categories)
            self.decisions.add(1, surface=call.surface, category=category, decision=decision)
            scores = audit.get("scores", {})
            if index in shadow_scores:  # the shadow classifier's classes, the same lexical score
                scores = decision_scores(scores[LEXICAL_CATEGORY], shadow_scores[index])
            shadow = shadow_verdict(scores, shadow_policy, lambda p: p.text.categories)
            if shadow is not None and index in shadow_scores:
                shadow.update(classifier_version=self._version_of(shadow_policy), scores=scores)
            self.policies.record_shadow(audit, decision, shadow, call.surface)
        decisions, audits = encode_outputs(results)
        return pb_utils.InferenceResponse(
            output_tensors=[pb_utils.Tensor("decision", decisions), pb_utils.Tensor("audit", audits)]
        )

    def _version_of(self, policy) -> int:
        """The classifier version a policy names (a retrained head), else the configured one."""
        return policy.text.classifier_version or self.classifier_version

    async def _shadow_scores(self, stage2_texts: dict[int, str], shadow_policy, version: int, precision: str):
        """When the shadow policy names another classifier version, that version scores the
        same stage-2 texts too (recorded, never enforced); {request index: scores}."""
        if shadow_policy is None or not stage2_texts or self._version_of(shadow_policy) == version:
            return {}
        indices = sorted(stage2_texts)
        try:
            matrix, _ = await self._classify(
                [stage2_texts[i] for i in indices], precision, self._version_of(shadow_policy)
            )
        except StageFailed as failure:
            self._warn(f"shadow classifier: {failure}")
            return {}
        return {i: class_scores(row, self.classes) for i, row in zip(indices, matrix, strict=True)}

    def _read_request(self, request) -> tuple[np.ndarray, str]:
        items = input_array(request, "text", "BYTES [texts]: UTF-8 texts").reshape(-1)
        if len(items) > self.max_texts:
            raise RouteInputError(
                f"input `text` has {len(items)} texts; allowed: 0 to {self.max_texts} per request. Split the request"
            )
        precision = str(request_parameters(request).get(PRECISION_PARAMETER, self.default_precision))
        if precision not in self.classifiers:
            raise RouteInputError(
                f"parameter `{PRECISION_PARAMETER}`={precision!r}; allowed: {', '.join(sorted(self.classifiers))}"
            )
        return items, precision

    async def _moderate(self, items: np.ndarray, precision: str, policy, version: int):
        """(decision, audit) per text under `policy` (one policy for the whole request), and
        the texts stage 2 judged {request index: text}."""
        batch = read_batch(list(items), self.max_chars)
        results: list = [None] * batch.size
        for index, message in batch.errors.items():
            results[index] = ("error", error_audit(message, policy, INPUT_ERROR))
        indices = batch.valid_indices
        if not indices:
            return results, {}
        texts = [batch.texts[i] for i in indices]
        try:
            profanity, lexical = await self._lexical(texts)
        except StageFailed as failure:
            self._warn(str(failure))
            for index in indices:
                results[index] = ("error", error_audit(str(failure), policy, MODEL_ERROR))
            return results, {}

        selected = [int(k) for k in np.flatnonzero(ambiguous(profanity, policy.text.ambiguous_band))]
        probabilities: dict[int, dict[str, float]] = {}
        classifier, classifier_error = None, None
        if selected:
            try:
                matrix, classifier = await self._classify([texts[k] for k in selected], precision, version)
                probabilities = {k: class_scores(row, self.classes) for k, row in zip(selected, matrix, strict=True)}
            except StageFailed as failure:
                self._warn(str(failure))
                classifier_error = str(failure)

        sent_to_stage2 = set(selected)
        for k, index in enumerate(indices):
            if classifier_error and k in sent_to_stage2:
                # Stage 1 alone must not decide a text the policy says it cannot judge.
                results[index] = ("error", error_audit(classifier_error, policy, MODEL_ERROR))
                continue
            scored = probabilities.get(k)
            results[index] = judge(profanity[k], scored, lexical, classifier if scored else None, policy, decide)
        stage2_texts = {indices[k]: texts[k] for k in probabilities}
        return results, stage2_texts

    # -- downstream models ------------------------------------------------------

    async def _lexical(self, texts: list[str]) -> tuple[np.ndarray, StageRun]:
        tensor = np.array([[t.encode("utf-8")] for t in texts], dtype=np.object_)
        started = time.perf_counter()
        outputs = await self.downstream.call(
            self.lexical_model,
            [pb_utils.Tensor("text", tensor)],
            ["profanity"],
            self.budget_s["lexical"],
            version=self.lexical_version,
        )
        run = StageRun(self.lexical_model, self.lexical_version, _ms_since(started))
        return outputs["profanity"].reshape(-1), run

    async def _classify(self, texts: list[str], precision: str, version: int) -> tuple[np.ndarray, StageRun]:
        model = self.classifiers[precision]
        started = time.perf_counter()
        input_ids, attention_mask = encode(self.tokenizer, texts)
        inputs = [pb_utils.Tensor("input_ids", input_ids), pb_utils.Tensor("attention_mask", attention_mask)]
        outputs = await self.downstream.call(
            model, inputs, ["probabilities"], self.budget_s["classifier"], version=version
        )
        return outputs["probabilities"], StageRun(model, version, _ms_since(started))

    def _warn(self, message: str) -> None:
        pb_utils.Logger.log_warn(f"{self.name}: {message}")


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
