"""The `moderate_image` route as a Triton Python (BLS) model.

Per item: header check (format, size limits) -> DALI preprocessing (one decode, two
letterboxes) -> NudeNet part detector and PP-OCR text detector side by side -> text
line recognition -> the recognised text judged by the `moderate_text` route (in chunks
it accepts) -> the policy's thresholds -> decision + audit. Detector and OCR calls are
batched across the items of a request; preprocessing is one call per item so that one
corrupt image fails only itself. Every BLS call has a deadline from the spec.

A bad item gets decision "error" with `error_kind` "input" (not an image, too large,
undecodable); a failing, late or missing model gives "error" with `error_kind` "model".
A malformed request is INVALID_ARG.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import detections as detections_module  # noqa: E402 - needs the path above
import ocr  # noqa: E402
from image_header import ImageRejected, check_image  # noqa: E402
from judgement import (  # noqa: E402
    TextJudgement,
    error_audit,
    final_decision,
    judge_image,
    judge_text,
    thresholds_json,
)
from live_policy import LivePolicies  # noqa: E402
from policy import ERROR, INPUT_ERROR, MODEL_ERROR, Policy, decision_category, shadow_record  # noqa: E402
from route_runtime import (  # noqa: E402
    Dependencies,
    Downstream,
    RouteCall,
    RouteObserver,
    RouteParameters,
    StageClock,
    StageFailed,
    answer_each,
    byte_items,
    gather_bounded,
    moderation_decisions_counter,
)
from surfaces import load_surfaces  # noqa: E402

DETECTOR_SIZE = 320
OCR_SIZE = 640
MODEL_BATCH = 8  # max_batch_size of the detector models
REC_BATCH = 32
# Chunks of one request in flight per model: enough to keep two instances busy (see
# route_runtime.gather_bounded for why not all at once).
CHUNKS_IN_FLIGHT = 2


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        params = RouteParameters.from_args(args)
        self.name = params.route
        # The policy in force and a shadow candidate, both re-read while serving (live_policy.py).
        self.policies = LivePolicies(params)
        with open(params.file("labels"), encoding="utf-8") as f:
            self.labels = json.load(f)
        self.charset = ocr.load_charset(params.file("ocr_keys"))
        models_file = os.path.join(params.folder, "models.json")
        self.model_versions = {}
        if os.path.isfile(models_file):
            with open(models_file, encoding="utf-8") as f:
                self.model_versions = json.load(f)
        full_preprocess = params.text("preprocess_model")
        # Without OCR, a pipeline without the OCR branch: the same detector input for
        # 40% of the CPU time. Configs from before it existed name none: keep the full one.
        detector_preprocess = params.text("detector_preprocess_model", full_preprocess)
        self.detector_model = params.text("detector_model")
        self.ocr_det_model = params.text("ocr_det_model")
        self.ocr_rec_model = params.text("ocr_rec_model")
        self.text_route = params.text("text_route")
        self.text_route_max_texts = params.integer("text_route_max_texts", minimum=1)
        # OCR is the costliest stage on a CPU; a deployment may turn it off (the audit says so).
        self.ocr_enabled = params.flag("ocr_enabled", default=True)
        self.preprocess_model = full_preprocess if self.ocr_enabled else detector_preprocess
        self.max_bytes = params.integer("max_image_bytes", minimum=1)
        self.max_pixels = params.integer("max_image_pixels", minimum=1)
        self.max_items = params.integer("max_items", minimum=1)
        self.budget_s = {stage: params.budget_s(stage) for stage in ("preprocess", "detect", "ocr", "text_route")}
        self.detector_settings = detections_module.DetectorSettings(
            min_score=params.number("detector_min_score"),
            nms_min_score=params.number("nms_min_score"),
            nms_iou=params.number("nms_iou"),
        )
        self.ocr_settings = ocr.OcrSettings(
            pixel_threshold=params.number("ocr_pixel_threshold"),
            box_threshold=params.number("ocr_box_threshold"),
            unclip_ratio=params.number("ocr_unclip_ratio"),
            max_lines=params.integer("max_text_lines", minimum=0),
        )
        self.downstream = Downstream()
        if self.ocr_enabled:
            unused = {detector_preprocess}
        else:
            unused = {full_preprocess, self.ocr_det_model, self.ocr_rec_model, self.text_route}
        unused.discard(self.preprocess_model)  # a config naming one pipeline for both
        composed = [m for m in params.composed_models() if m not in unused]
        # The audit names the models that judged the item, not every model exported with it.
        self.model_versions = {name: v for name, v in self.model_versions.items() if name not in unused}
        self.dependencies = Dependencies(self.name, composed)
        stages = ("preprocess", "detect", "ocr", "text")
        self.observer = RouteObserver(
            self.name, load_surfaces(params.file("surfaces")), stages, instances=params.instance_count()
        )
        self.decisions = moderation_decisions_counter(self.name)
        self.logger = pb_utils.Logger

    async def execute(self, requests: list) -> list:
        return await answer_each(requests, self._answer, self.name, self.observer)

    # -- one request --------------------------------------------------------------

    async def _answer(self, request, call: RouteCall):
        self.policies.refresh()
        policy = self.policies.active  # one policy for the whole request, even if a promote lands mid-way
        items = byte_items(request, "image", "items", self.max_items, "max_items")
        if self.dependencies.missing():
            call.degrade("dependency", self.dependencies.reason())
        decisions, records = await self._moderate(items, call.clock, policy)
        audits = []
        for decision, audit in zip(decisions, records, strict=True):
            category = decision_category(decision, audit, self.policies.categories)
            self.decisions.add(1, surface=call.surface, category=category, decision=decision)
            self.policies.record_shadow(audit, decision, self._shadow(audit), call.surface)
            audits.append(json.dumps(audit))
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor("decision", np.array([d.encode() for d in decisions], dtype=np.object_)),
                pb_utils.Tensor("audit", np.array([a.encode() for a in audits], dtype=np.object_)),
            ]
        )

    async def _moderate(self, items: list[bytes], clock: StageClock, policy: Policy) -> tuple[list[str], list[dict]]:
        decisions: list[str | None] = [None] * len(items)
        audits: list[dict | None] = [None] * len(items)

        def reject(indices, message: str, kind: str = MODEL_ERROR) -> None:
            for index in indices:
                decisions[index] = ERROR
                audits[index] = error_audit(f"image[{index}]: {message}", policy, kind)

        with clock.stage("preprocess"):
            headers = {}
            for index, data in enumerate(items):
                try:
                    headers[index] = check_image(data, self.max_bytes, self.max_pixels)
                except ImageRejected as error:
                    reject([index], str(error), INPUT_ERROR)
            preprocessed = await asyncio.gather(*(self._preprocess(items[i]) for i in headers))
            ready = {}
            for index, result in zip(headers, preprocessed, strict=True):
                if isinstance(result, StageFailed):
                    reject([index], str(result), INPUT_ERROR if result.invalid_input else MODEL_ERROR)
                else:
                    ready[index] = result
        if not ready:
            return decisions, audits
        order = list(ready)
        try:
            with clock.stage("detect"):
                raw_detections, probability_maps = await asyncio.gather(
                    self._batched(
                        self.detector_model, "images", "output0", [ready[i]["detector_input"] for i in order]
                    ),
                    self._text_maps([ready[i] for i in order]),
                )
            with clock.stage("ocr"):
                found = self._found(order, ready, raw_detections, probability_maps)
                recognised = await self._recognise([crop for i in order for crop in found[i]["crops"]])
        except StageFailed as failure:
            reject(order, f"not judged: {failure}")
            return decisions, audits
        with clock.stage("text"):
            lines_by_item = self._split_lines(order, found, recognised, policy)
            judgements = await self._judge_text(lines_by_item)
        stage_ms = clock.rounded()
        for index in order:
            decisions[index], audits[index] = self._decide(
                headers[index], found[index], lines_by_item[index], judgements.get(index), stage_ms, policy
            )
        return decisions, audits

    def _found(self, order: list[int], ready: dict, raw_detections: list, probability_maps: list) -> dict[int, dict]:
        """Per item: its size, decoded detections, text boxes and the line crops to recognise."""
        found = {}
        for index, raw, probability in zip(order, raw_detections, probability_maps, strict=True):
            size = tuple(int(v) for v in ready[index]["original_size"])
            boxes = ocr.text_boxes(probability[0], self.ocr_settings) if probability is not None else []
            found[index] = {
                "size": size,
                "detections": detections_module.decode(raw, size, DETECTOR_SIZE, self.labels, self.detector_settings),
                "boxes": boxes,
                "crops": [ocr.crop_line(ready[index]["ocr_pixels"], box) for box in boxes],
            }
        return found

    # -- stages ------------------------------------------------------------------

    async def _preprocess(self, data: bytes):
        """The DALI outputs for one image, or the StageFailed that says why not."""
        inputs = [pb_utils.Tensor("image", np.frombuffer(data, np.uint8)[None, :])]
        names = ["detector_input", "original_size"] + (["ocr_input", "ocr_pixels"] if self.ocr_enabled else [])
        try:
            outputs = await self.downstream.call(self.preprocess_model, inputs, names, self.budget_s["preprocess"])
        except StageFailed as failure:
            return failure
        return {name: value[0] for name, value in outputs.items()}

    async def _batched(self, model: str, input_name: str, output_name: str, arrays: list) -> list[np.ndarray]:
        chunks = [np.stack(arrays[s : s + MODEL_BATCH]) for s in range(0, len(arrays), MODEL_BATCH)]
        calls = [
            self.downstream.call(model, [pb_utils.Tensor(input_name, chunk)], [output_name], self.budget_s["detect"])
            for chunk in chunks
        ]
        results = await gather_bounded(calls, CHUNKS_IN_FLIGHT)
        return [row for result in results for row in result[output_name]]

    async def _text_maps(self, preprocessed: list[dict]) -> list:
        if not self.ocr_enabled:
            return [None] * len(preprocessed)
        return await self._batched(self.ocr_det_model, "x", "sigmoid_0.tmp_0", [p["ocr_input"] for p in preprocessed])

    async def _recognise(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        if not crops:
            return []
        chunks = [crops[s : s + REC_BATCH] for s in range(0, len(crops), REC_BATCH)]
        calls = [
            self.downstream.call(
                self.ocr_rec_model,
                [pb_utils.Tensor("x", ocr.recognition_batch(chunk))],
                ["softmax_11.tmp_0"],
                self.budget_s["ocr"],
            )
            for chunk in chunks
        ]
        results = await gather_bounded(calls, CHUNKS_IN_FLIGHT)
        return [line for result in results for line in ocr.ctc_greedy(result["softmax_11.tmp_0"], self.charset)]

    def _split_lines(self, order: list[int], found: dict, recognised: list, policy: Policy) -> dict[int, list[dict]]:
        """Recognised lines per item, with boxes in original pixels and the confidence filter applied."""
        by_item, position = {}, 0
        for index in order:
            scale = max(found[index]["size"]) / OCR_SIZE
            by_item[index] = []
            for box in found[index]["boxes"]:
                text, confidence = recognised[position]
                position += 1
                by_item[index].append(
                    {
                        "text": text,
                        "confidence": round(confidence, 4),
                        "box": (box.points * scale).round(1).tolist(),
                        "judged": bool(text.strip()) and confidence >= policy.image.ocr_min_confidence,
                    }
                )
        return by_item

    async def _judge_text(self, lines_by_item: dict[int, list[dict]]) -> dict[int, TextJudgement]:
        owners = [(index, line["text"]) for index, lines in lines_by_item.items() for line in lines if line["judged"]]
        judgements = {index: TextJudgement() for index, _ in owners}
        # In chunks the text route accepts: one long request would fail whole past its limit.
        step = self.text_route_max_texts
        chunks = [owners[start : start + step] for start in range(0, len(owners), step)]
        answers = await gather_bounded([self._judge_chunk([text for _, text in c]) for c in chunks], CHUNKS_IN_FLIGHT)
        for chunk, answer in zip(chunks, answers, strict=True):
            if isinstance(answer, str):
                for index, _ in chunk:
                    judgements[index].unjudged_reason = answer
                continue
            for (index, _), (decision, audit) in zip(chunk, answer, strict=True):
                judgements[index].decisions.append(decision)
                judgements[index].audits.append(audit)
        return judgements

    async def _judge_chunk(self, texts: list[str]) -> list[tuple[str, dict]] | str:
        """(decision, audit) per line from the text route, or why the lines were not judged."""
        tensor = np.array([text.encode("utf-8") for text in texts], dtype=np.object_)
        try:
            outputs = await self.downstream.call(
                self.text_route, [pb_utils.Tensor("text", tensor)], ["decision", "audit"], self.budget_s["text_route"]
            )
        except StageFailed as failure:
            self.logger.log_warn(f"{self.name}: OCR text not judged: {failure}")
            return str(failure)
        if not len(outputs["decision"]) == len(outputs["audit"]) == len(texts):
            return f"{self.text_route} answered {len(outputs['decision'])} of {len(texts)} lines"
        return [(_text(d), json.loads(_text(a))) for d, a in zip(outputs["decision"], outputs["audit"], strict=True)]

    def _decide(self, header, found, lines, judgement, stage_ms, policy: Policy) -> tuple[str, dict]:
        scores = detections_module.label_scores(found["detections"], self.labels)
        judged_lines = [line["text"] for line in lines if line["judged"]]
        text_verdict = judge_text(judged_lines, judgement)
        decision, reasons = final_decision(judge_image(scores, policy), text_verdict)
        audit = {
            "decision": decision,
            "reasons": reasons,
            "image": {"format": header.format, "height": found["size"][0], "width": found["size"][1]},
            "scores": {k: round(v, 4) for k, v in scores.items()},
            "thresholds": thresholds_json(policy),
            "detections": [d.as_json() for d in found["detections"]],
            "ocr": {
                "enabled": self.ocr_enabled,
                "lines": lines,
                "text_decision": text_verdict[0],
                "text_reasons": text_verdict[1],
                "text_judged": bool(judged_lines) and judgement is not None and not judgement.unjudged_reason,
                "text_route": self.text_route,
                "text_audits": judgement.audits if judgement else [],
            },
            "models": self.model_versions,
            "policy_version": policy.version,
            "policy_sha256": policy.sha256,
            "ms": stage_ms,
        }
        return decision, audit

    def _shadow(self, audit: dict) -> dict | None:
        """The shadow policy's decision on this image: its label thresholds on the same
        detector scores, combined with the recognised text's verdict as the text route gave
        it (that route shadows its own policy in each line's audit)."""
        candidate = self.policies.shadow
        if candidate is None or audit["decision"] == ERROR:
            return None
        text_verdict = (audit["ocr"]["text_decision"], audit["ocr"]["text_reasons"])
        decision, reasons = final_decision(judge_image(audit["scores"], candidate), text_verdict)
        return shadow_record(candidate, decision, reasons)


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
