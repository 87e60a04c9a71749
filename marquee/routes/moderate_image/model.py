"""The `moderate_image` route as a Triton Python (BLS) model.

Per item: header check (format, size limits) -> DALI preprocessing (one decode, two
letterboxes) -> NudeNet part detector and PP-OCR text detector side by side -> text
line recognition -> the recognised text judged by the `moderate_text` route -> the
policy's thresholds -> decision + audit. Detector and OCR calls are batched across the
items of a request; preprocessing is one call per item so that one corrupt image fails
only itself. A bad item gets decision "error"; a malformed request is a TritonError.
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
import detections as detections_module  # noqa: E402 - needs the path above
import ocr  # noqa: E402
from image_checks import ImageRejected, check_image  # noqa: E402
from judgement import (  # noqa: E402
    TextJudgement,
    error_audit,
    final_decision,
    judge_image,
    judge_text,
    thresholds_json,
)
from policy import ERROR, load_policy  # noqa: E402

DETECTOR_SIZE = 320
OCR_SIZE = 640
MODEL_BATCH = 8  # max_batch_size of the detector models
REC_BATCH = 32
TEXT_ROUTE_TIMEOUT_S = 10.0


class StageFailed(Exception):
    """A downstream model failed; the items it was judging cannot be judged."""


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        self.policy = load_policy(os.path.join(version_dir, params["policy"]))
        with open(os.path.join(version_dir, params["labels"]), encoding="utf-8") as f:
            self.labels = json.load(f)
        self.charset = ocr.load_charset(os.path.join(version_dir, params["ocr_keys"]))
        models_file = os.path.join(version_dir, "models.json")
        self.model_versions = {}
        if os.path.isfile(models_file):
            with open(models_file, encoding="utf-8") as f:
                self.model_versions = json.load(f)
        self.preprocess_model = params["preprocess_model"]
        self.detector_model = params["detector_model"]
        self.ocr_det_model = params["ocr_det_model"]
        self.ocr_rec_model = params["ocr_rec_model"]
        self.text_route = params["text_route"]
        # OCR is the costliest stage on a CPU; a deployment may turn it off (the audit says so).
        self.ocr_enabled = params.get("ocr_enabled", "true").lower() == "true"
        self.max_bytes = int(params["max_image_bytes"])
        self.max_pixels = int(params["max_image_pixels"])
        self.max_items = int(params["max_items"])
        self.detector_settings = detections_module.DetectorSettings(
            min_score=float(params["detector_min_score"]),
            nms_min_score=float(params["nms_min_score"]),
            nms_iou=float(params["nms_iou"]),
        )
        self.ocr_settings = ocr.OcrSettings(
            pixel_threshold=float(params["ocr_pixel_threshold"]),
            box_threshold=float(params["ocr_box_threshold"]),
            unclip_ratio=float(params["ocr_unclip_ratio"]),
            max_lines=int(params["max_text_lines"]),
        )
        self.logger = pb_utils.Logger

    async def execute(self, requests: list) -> list:
        return list(await asyncio.gather(*(self._answer(request) for request in requests)))

    # -- one request --------------------------------------------------------------

    async def _answer(self, request):
        tensor = pb_utils.get_input_tensor_by_name(request, "image")
        items = tensor.as_numpy() if tensor is not None else None
        if items is None or items.dtype != np.object_ or items.ndim != 1:
            shape = None if items is None else list(items.shape)
            return _request_error(f"moderate_image: input `image` must be BYTES [items], got shape {shape}")
        if not 1 <= len(items) <= self.max_items:
            return _request_error(
                f"moderate_image: input `image` has {len(items)} items; allowed 1..{self.max_items} (max_items)"
            )
        decisions, audits = await self._moderate([bytes(item) for item in items])
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor("decision", np.array([d.encode() for d in decisions], dtype=np.object_)),
                pb_utils.Tensor("audit", np.array([a.encode() for a in audits], dtype=np.object_)),
            ]
        )

    async def _moderate(self, items: list[bytes]) -> tuple[list[str], list[str]]:
        started = time.perf_counter()
        decisions: list[str | None] = [None] * len(items)
        audits: list[str | None] = [None] * len(items)

        def reject(index: int, message: str) -> None:
            decisions[index] = ERROR
            audits[index] = error_audit(f"image[{index}]: {message}", self.policy)

        headers = {}
        for index, data in enumerate(items):
            try:
                headers[index] = check_image(data, self.max_bytes, self.max_pixels)
            except ImageRejected as error:
                reject(index, str(error))
        preprocessed = await asyncio.gather(*(self._preprocess(items[i]) for i in headers))
        ready = {}
        for index, result in zip(headers, preprocessed, strict=True):
            if isinstance(result, str):
                reject(index, result)
            else:
                ready[index] = result
        stage_ms = {"preprocess": _ms_since(started)}
        if not ready:
            return decisions, audits

        clock = time.perf_counter()
        order = list(ready)
        try:
            raw_detections, probability_maps = await asyncio.gather(
                self._batched(self.detector_model, "images", "output0", [ready[i]["detector_input"] for i in order]),
                self._text_maps([ready[i] for i in order]),
            )
        except StageFailed as failure:
            for index in order:
                reject(index, f"not judged: {failure}")
            return decisions, audits
        stage_ms["detect"] = _ms_since(clock)

        clock = time.perf_counter()
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
        try:
            recognised = await self._recognise([crop for i in order for crop in found[i]["crops"]])
        except StageFailed as failure:
            for index in order:
                reject(index, f"not judged: {failure}")
            return decisions, audits
        stage_ms["ocr"] = _ms_since(clock)

        clock = time.perf_counter()
        lines_by_item = self._split_lines(order, found, recognised)
        judgements = await self._judge_text(lines_by_item)
        stage_ms["text"] = _ms_since(clock)
        stage_ms["total"] = _ms_since(started)
        for index in order:
            decisions[index], audits[index] = self._decide(
                index, headers[index], found[index], lines_by_item[index], judgements.get(index), stage_ms
            )
        return decisions, audits

    # -- stages ------------------------------------------------------------------

    async def _preprocess(self, data: bytes):
        """The DALI outputs for one image, or an error message."""
        inputs = [pb_utils.Tensor("image", np.frombuffer(data, np.uint8)[None, :])]
        names = ["detector_input", "original_size"] + (["ocr_input", "ocr_pixels"] if self.ocr_enabled else [])
        try:
            outputs = await self._call(self.preprocess_model, inputs, names)
        except StageFailed as failure:
            return str(failure)
        return {name: value[0] for name, value in outputs.items()}

    async def _batched(self, model: str, input_name: str, output_name: str, arrays: list) -> list[np.ndarray]:
        chunks = [np.stack(arrays[s : s + MODEL_BATCH]) for s in range(0, len(arrays), MODEL_BATCH)]
        results = await asyncio.gather(
            *(self._call(model, [pb_utils.Tensor(input_name, chunk)], [output_name]) for chunk in chunks)
        )
        return [row for result in results for row in result[output_name]]

    async def _text_maps(self, preprocessed: list[dict]) -> list:
        if not self.ocr_enabled:
            return [None] * len(preprocessed)
        return await self._batched(self.ocr_det_model, "x", "sigmoid_0.tmp_0", [p["ocr_input"] for p in preprocessed])

    async def _recognise(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        if not crops:
            return []
        chunks = [crops[s : s + REC_BATCH] for s in range(0, len(crops), REC_BATCH)]
        results = await asyncio.gather(
            *(
                self._call(
                    self.ocr_rec_model, [pb_utils.Tensor("x", ocr.recognition_batch(chunk))], ["softmax_11.tmp_0"]
                )
                for chunk in chunks
            )
        )
        return [line for result in results for line in ocr.ctc_greedy(result["softmax_11.tmp_0"], self.charset)]

    def _split_lines(self, order: list[int], found: dict, recognised: list) -> dict[int, list[dict]]:
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
                        "judged": bool(text.strip()) and confidence >= self.policy.image.ocr_min_confidence,
                    }
                )
        return by_item

    async def _judge_text(self, lines_by_item: dict[int, list[dict]]) -> dict[int, TextJudgement]:
        owners = [(index, line["text"]) for index, lines in lines_by_item.items() for line in lines if line["judged"]]
        if not owners:
            return {}
        texts = np.array([text.encode("utf-8") for _, text in owners], dtype=np.object_)
        judgements = {index: TextJudgement() for index, _ in owners}
        try:
            outputs = await self._call(
                self.text_route, [pb_utils.Tensor("text", texts)], ["decision", "audit"], timeout_s=TEXT_ROUTE_TIMEOUT_S
            )
        except StageFailed as failure:
            self.logger.log_warn(f"moderate_image: OCR text not judged: {failure}")
            for judgement in judgements.values():
                judgement.unjudged_reason = str(failure)
            return judgements
        if not len(outputs["decision"]) == len(outputs["audit"]) == len(owners):
            reason = f"{self.text_route} answered {len(outputs['decision'])} of {len(owners)} lines"
            for judgement in judgements.values():
                judgement.unjudged_reason = reason
            return judgements
        for (index, _), decision, audit in zip(owners, outputs["decision"], outputs["audit"], strict=True):
            judgements[index].decisions.append(_text(decision))
            judgements[index].audits.append(json.loads(_text(audit)))
        return judgements

    def _decide(self, index, header, found, lines, judgement, stage_ms) -> tuple[str, str]:
        scores = detections_module.label_scores(found["detections"], self.labels)
        judged_lines = [line["text"] for line in lines if line["judged"]]
        text_verdict = judge_text(judged_lines, judgement)
        decision, reasons = final_decision(judge_image(scores, self.policy), text_verdict)
        audit = {
            "decision": decision,
            "reasons": reasons,
            "image": {"format": header.format, "height": found["size"][0], "width": found["size"][1]},
            "scores": {k: round(v, 4) for k, v in scores.items()},
            "thresholds": thresholds_json(self.policy),
            "detections": [d.as_json() for d in found["detections"]],
            "ocr": {
                "enabled": self.ocr_enabled,
                "lines": lines,
                "text_decision": text_verdict[0],
                "text_judged": bool(judged_lines) and judgement is not None and not judgement.unjudged_reason,
                "text_route": self.text_route,
                "text_audits": judgement.audits if judgement else [],
            },
            "models": self.model_versions,
            "policy_version": self.policy.version,
            "policy_sha256": self.policy.sha256,
            "ms": {k: round(v, 2) for k, v in stage_ms.items()},
        }
        return decision, json.dumps(audit)

    async def _call(self, model: str, inputs: list, outputs: list[str], timeout_s: float | None = None) -> dict:
        request = pb_utils.InferenceRequest(
            model_name=model,
            inputs=inputs,
            requested_output_names=outputs,
            timeout=int(timeout_s * 1_000_000) if timeout_s else 0,
        )
        try:
            if timeout_s:
                response = await asyncio.wait_for(request.async_exec(), timeout_s)
            else:
                response = await request.async_exec()
        except Exception as error:  # noqa: BLE001 - any BLS failure is the stage's failure
            raise StageFailed(f"{model} failed: {error or type(error).__name__}") from None
        if response.has_error():
            raise StageFailed(f"{model} failed: {response.error().message()}")
        return {name: pb_utils.get_output_tensor_by_name(response, name).as_numpy() for name in outputs}


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def _request_error(message: str):
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))
