"""The `moderate_text` route as a Triton Python (BLS) model.

Cheap filter first, model second: every text gets the lexical profanity score (one
batched call for the whole request); only texts whose score falls inside the policy's
ambiguous band are tokenised and sent to the MiniLM classifier (one more batched call).
The policy turns the scores into allow / review / block, and every text gets an audit
record naming the models, their versions, the scores, the thresholds and the policy.

Item-level problems (empty, whitespace-only, too long, invalid UTF-8) and a failing
downstream model give decision "error" for the texts concerned, never a failed request:
the caller sends those items down its durable path. Only a malformed request (too many
texts, an unknown `classifier_precision`) is a request error.
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
from cascade import (  # noqa: E402 - needs the path above
    StageRun,
    ambiguous,
    class_scores,
    encode_outputs,
    error_audit,
    judge,
    read_batch,
)
from policy import decide, load_policy  # noqa: E402
from text_tokens import encode, load_tokenizer  # noqa: E402

PRECISION_PARAMETER = "classifier_precision"


class StageFailed(Exception):
    """A downstream model failed; the texts it should have scored get decision "error"."""


class RequestError(Exception):
    """The request as a whole is malformed."""


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        self.name = config["name"]
        self.policy = load_policy(os.path.join(version_dir, params["policy"]))
        self.tokenizer = load_tokenizer(os.path.join(version_dir, params["tokenizer"]), int(params["max_tokens"]))
        self.lexical_model = params["lexical_model"]
        self.lexical_version = int(params["lexical_version"])
        self.classifiers = {"fp32": params["classifier_fp32_model"], "int8": params["classifier_int8_model"]}
        self.classifier_version = int(params["classifier_version"])
        self.default_precision = params["default_precision"]
        self.classes = params["classes"].split(",")
        self.max_texts = int(params["max_texts"])
        self.max_chars = int(params["max_chars"])

    async def execute(self, requests: list) -> list:
        return list(await asyncio.gather(*(self._answer(request) for request in requests)))

    async def _answer(self, request):
        try:
            items, precision = self._read_request(request)
        except RequestError as error:
            return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(f"{self.name}: {error}"))
        results = await self._moderate(items, precision)
        decisions, audits = encode_outputs(results)
        return pb_utils.InferenceResponse(
            output_tensors=[pb_utils.Tensor("decision", decisions), pb_utils.Tensor("audit", audits)]
        )

    def _read_request(self, request) -> tuple[np.ndarray, str]:
        items = pb_utils.get_input_tensor_by_name(request, "text").as_numpy().reshape(-1)
        if len(items) > self.max_texts:
            raise RequestError(
                f"input `text` has {len(items)} texts; allowed: 0 to {self.max_texts} per request. Split the request"
            )
        parameters = json.loads(request.parameters() or "{}")
        precision = str(parameters.get(PRECISION_PARAMETER, self.default_precision))
        if precision not in self.classifiers:
            raise RequestError(
                f"parameter `{PRECISION_PARAMETER}`={precision!r}; allowed: {', '.join(sorted(self.classifiers))}"
            )
        return items, precision

    async def _moderate(self, items: np.ndarray, precision: str) -> list[tuple[str, dict]]:
        batch = read_batch(list(items), self.max_chars)
        results: list = [None] * batch.size
        for index, message in batch.errors.items():
            results[index] = ("error", error_audit(message, self.policy))
        indices = batch.valid_indices
        if not indices:
            return results
        texts = [batch.texts[i] for i in indices]
        try:
            profanity, lexical = await self._lexical(texts)
        except StageFailed as error:
            self._warn(str(error))
            for index in indices:
                results[index] = ("error", error_audit(str(error), self.policy))
            return results

        selected = [int(k) for k in np.flatnonzero(ambiguous(profanity, self.policy.text.ambiguous_band))]
        probabilities: dict[int, dict[str, float]] = {}
        classifier, classifier_error = None, None
        sent_to_stage2 = set(selected)
        if selected:
            try:
                matrix, classifier = await self._classify([texts[k] for k in selected], precision)
                probabilities = {k: class_scores(row, self.classes) for k, row in zip(selected, matrix, strict=True)}
            except StageFailed as error:
                self._warn(str(error))
                classifier_error = str(error)

        for k, index in enumerate(indices):
            if classifier_error and k in sent_to_stage2:
                # Stage 1 alone must not decide a text the policy says it cannot judge.
                results[index] = ("error", error_audit(classifier_error, self.policy))
                continue
            scored = probabilities.get(k)
            results[index] = judge(profanity[k], scored, lexical, classifier if scored else None, self.policy, decide)
        return results

    # -- downstream models ------------------------------------------------------

    async def _lexical(self, texts: list[str]) -> tuple[np.ndarray, StageRun]:
        tensor = np.array([[t.encode("utf-8")] for t in texts], dtype=np.object_)
        started = time.perf_counter()
        outputs = await self._call(
            self.lexical_model, self.lexical_version, [pb_utils.Tensor("text", tensor)], ["profanity"]
        )
        run = StageRun(self.lexical_model, self.lexical_version, _ms_since(started))
        return outputs["profanity"].reshape(-1), run

    async def _classify(self, texts: list[str], precision: str) -> tuple[np.ndarray, StageRun]:
        model = self.classifiers[precision]
        started = time.perf_counter()
        input_ids, attention_mask = encode(self.tokenizer, texts)
        inputs = [pb_utils.Tensor("input_ids", input_ids), pb_utils.Tensor("attention_mask", attention_mask)]
        outputs = await self._call(model, self.classifier_version, inputs, ["probabilities"])
        return outputs["probabilities"], StageRun(model, self.classifier_version, _ms_since(started))

    async def _call(self, model: str, version: int, inputs: list, outputs: list[str]) -> dict[str, np.ndarray]:
        bls = pb_utils.InferenceRequest(
            model_name=model, model_version=version, inputs=inputs, requested_output_names=outputs
        )
        try:
            response = await bls.async_exec()
        except Exception as error:  # noqa: BLE001 - any BLS failure is reported per text
            raise StageFailed(f"{model} (version {version}) failed: {error}") from None
        if response.has_error():
            raise StageFailed(f"{model} (version {version}) failed: {response.error().message()}")
        return {name: pb_utils.get_output_tensor_by_name(response, name).as_numpy() for name in outputs}

    def _warn(self, message: str) -> None:
        pb_utils.Logger.log_warn(f"{self.name}: {message}")


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
