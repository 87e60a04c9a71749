"""Specs of the image moderation route and the models behind it.

moderate_image (Python BLS: validation, decisions, audit)
  ├─ image_preprocess  (DALI)  encoded bytes -> detector input, OCR input, pixels, size
  ├─ nudenet_320n      (ONNX)  YOLOv8n part detector, 18 labels
  ├─ ocr_det_ppocrv4   (ONNX)  PP-OCRv4 text probability map (DB)
  ├─ ocr_rec_ppocrv4   (ONNX)  PP-OCRv4 line recogniser (CTC)
  └─ moderate_text     (route of its own) judges the recognised text
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from marquee.preprocess.image import DETECTOR_SIZE, INPUT_NAME, MAX_BATCH, OCR_SIZE
from marquee.specs.base import (
    DataType,
    DynamicBatching,
    InstanceGroup,
    LatencyBudget,
    ModelSpec,
    Precision,
    TensorSpec,
    Tolerance,
)
from marquee.specs.moderation_text import MODERATE_TEXT

FAMILY = "moderation_image"


UINT8 = DataType.UINT8

# YOLOv8 at 320: 40x40 + 20x20 + 10x10 anchor points; 4 box values + 18 class scores.
DETECTOR_ANCHORS = 2100
DETECTOR_LABELS = 18
OCR_CHARSET = 6625  # blank + 6623 dictionary characters + space
OCR_LINE_HEIGHT = 48


@dataclass(frozen=True)
class ImageLimits:
    """Items above these are refused with an "error" decision before anything decodes them."""

    max_image_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 40_000_000  # e.g. 8000 x 5000; a decoded BGR image of 120 MB
    max_items: int = 64  # per request
    max_text_lines: int = 32  # OCR lines per image sent to recognition


LIMITS = ImageLimits()
_SAME_AS_REFERENCE = Tolerance(atol=1e-4)

IMAGE_PREPROCESS = ModelSpec(
    name="image_preprocess",
    family=FAMILY,
    precision=Precision.FP32,
    description="DALI: decode JPEG/PNG once, letterbox for the detector (320) and OCR (640)",
    backend="dali",
    artifact="model.dali",
    inputs=(TensorSpec(INPUT_NAME, UINT8, ("bytes",), description="encoded JPEG or PNG"),),
    outputs=(
        TensorSpec("detector_input", DataType.FP32, (3, DETECTOR_SIZE, DETECTOR_SIZE)),
        TensorSpec("ocr_input", DataType.FP32, (3, OCR_SIZE, OCR_SIZE)),
        TensorSpec("ocr_pixels", UINT8, (OCR_SIZE, OCR_SIZE, 3)),
        TensorSpec("original_size", DataType.INT64, (2,), fields=("height", "width")),
    ),
    max_batch_size=MAX_BATCH,
    dynamic_batching=DynamicBatching(max_queue_delay_us=200),
    # AUTO: a GPU instance under the native DALI backend on GPU hosts (the "mixed"
    # decoder needs one), a CPU instance here.
    # The stand-in backend reads each header first and refuses what the limits do not allow.
    parameters={
        "num_threads": "1",
        "max_image_bytes": str(LIMITS.max_image_bytes),
        "max_image_pixels": str(LIMITS.max_image_pixels),
    },
    # Against NudeNet's own OpenCV letterbox: DALI rounds resized pixels differently by up to 2 levels.
    tolerance=Tolerance(atol=3.0 / 255, mean_atol=1e-3),
    budget=LatencyBudget(perf_latency_p99_us=40_000),
)

# The same pipeline without its OCR branch, for a route with OCR off: the OCR resize and
# its 6 MB of outputs are most of the preprocessing cost (marquee/preprocess/image.py).
IMAGE_PREPROCESS_DETECTOR = dataclasses.replace(
    IMAGE_PREPROCESS,
    name="image_preprocess_detector",
    description="DALI: decode JPEG/PNG, letterbox for the detector (320) only",
    outputs=tuple(t for t in IMAGE_PREPROCESS.outputs if t.name in ("detector_input", "original_size")),
)

NUDENET = ModelSpec(
    name="nudenet_320n",
    family=FAMILY,
    precision=Precision.FP32,
    description="NudeNet 320n (YOLOv8n) exposed/covered body-part detector, from the nudenet package",
    inputs=(TensorSpec("images", DataType.FP32, (3, DETECTOR_SIZE, DETECTOR_SIZE)),),
    outputs=(TensorSpec("output0", DataType.FP32, (4 + DETECTOR_LABELS, DETECTOR_ANCHORS)),),
    max_batch_size=MAX_BATCH,
    dynamic_batching=DynamicBatching(max_queue_delay_us=500),
    # One instance per route instance: with one, the route's second image in flight
    # waited a whole detector call in the queue (12.5 ms of 53 at 2 in flight, 2026-12-03).
    # Batching would not pay it back: 24 ms per image at batch 1, 2, 4 and 8 on one thread.
    instance_groups=(InstanceGroup(count=2),),
    warmup_batch_sizes=(1,),
    tolerance=_SAME_AS_REFERENCE,
    budget=LatencyBudget(perf_latency_p99_us=60_000),
)

OCR_DET = ModelSpec(
    name="ocr_det_ppocrv4",
    family=FAMILY,
    precision=Precision.FP32,
    description="PP-OCRv4 text detection (DB probability map), from rapidocr-onnxruntime",
    inputs=(TensorSpec("x", DataType.FP32, (3, OCR_SIZE, OCR_SIZE)),),
    outputs=(TensorSpec("sigmoid_0.tmp_0", DataType.FP32, (1, OCR_SIZE, OCR_SIZE)),),
    max_batch_size=MAX_BATCH,
    dynamic_batching=DynamicBatching(max_queue_delay_us=500),
    tolerance=_SAME_AS_REFERENCE,
    budget=LatencyBudget(perf_latency_p99_us=300_000),
)

OCR_REC = ModelSpec(
    name="ocr_rec_ppocrv4",
    family=FAMILY,
    precision=Precision.FP32,
    description="PP-OCRv4 text line recognition (CTC over 6625 symbols), from rapidocr-onnxruntime",
    inputs=(TensorSpec("x", DataType.FP32, (3, OCR_LINE_HEIGHT, "line_width")),),
    outputs=(TensorSpec("softmax_11.tmp_0", DataType.FP32, ("steps", OCR_CHARSET)),),
    max_batch_size=32,
    dynamic_batching=DynamicBatching(max_queue_delay_us=500),
    tolerance=_SAME_AS_REFERENCE,
    budget=LatencyBudget(perf_latency_p99_us=100_000),
)

MODERATE_IMAGE = ModelSpec(
    name="moderate_image",
    family=FAMILY,
    precision=Precision.FP32,
    description="image moderation route: part detector + OCR -> moderate_text, policy thresholds, audit",
    backend="python",
    artifact="model.py",
    inputs=(TensorSpec("image", DataType.BYTES, ("items",), description="encoded JPEG or PNG, one per item"),),
    outputs=(
        TensorSpec("decision", DataType.BYTES, ("items",), description="allow | review | block | error"),
        TensorSpec("audit", DataType.BYTES, ("items",), description="JSON record per item"),
    ),
    max_batch_size=0,
    dynamic_batching=None,
    instance_groups=(InstanceGroup(count=2),),
    parameters={
        "preprocess_model": IMAGE_PREPROCESS.name,
        # Used instead of preprocess_model while ocr_enabled is "false".
        "detector_preprocess_model": IMAGE_PREPROCESS_DETECTOR.name,
        "detector_model": NUDENET.name,
        "ocr_det_model": OCR_DET.name,
        "ocr_rec_model": OCR_REC.name,
        "text_route": MODERATE_TEXT.name,
        # OCR lines go to the text route in chunks it accepts (its own request limit).
        "text_route_max_texts": MODERATE_TEXT.parameters["max_texts"],
        # "false" skips text detection/recognition (the costliest stage on CPU hosts).
        "ocr_enabled": "true",
        "policy": "policy.yaml",
        "surfaces": "surfaces.yaml",  # policies/surfaces.yaml, copied at export
        "labels": "labels.json",
        "ocr_keys": "ocr_keys.txt",
        "max_image_bytes": str(LIMITS.max_image_bytes),
        "max_image_pixels": str(LIMITS.max_image_pixels),
        "max_items": str(LIMITS.max_items),
        "max_text_lines": str(LIMITS.max_text_lines),
        # NudeNet's own postprocessing constants: candidates >= 0.2, NMS at score 0.25, IoU 0.45.
        "detector_min_score": "0.2",
        "nms_min_score": "0.25",
        "nms_iou": "0.45",
        # PP-OCR DB postprocessing defaults (rapidocr config.yaml).
        "ocr_pixel_threshold": "0.3",
        "ocr_box_threshold": "0.5",
        "ocr_unclip_ratio": "1.6",
    },
    # Deadlines of each BLS stage for a full request (max_items images): safety nets
    # against a hung model; a late stage gives its images decision "error" (error_kind
    # "model"), and the moderation queue retries them.
    stage_budgets_ms={
        "preprocess": 5_000.0,
        "detect": 10_000.0,
        "ocr": 10_000.0,
        "text_route": 15_000.0,
    },
    composes=(
        "preprocess_model",
        "detector_preprocess_model",
        "detector_model",
        "ocr_det_model",
        "ocr_rec_model",
        "text_route",
    ),
    tolerance=_SAME_AS_REFERENCE,
    budget=LatencyBudget(perf_latency_p99_us=1_000_000, batch_size=1, concurrency=2),
)

IMAGE_MODERATION_MODELS = (IMAGE_PREPROCESS, IMAGE_PREPROCESS_DETECTOR, NUDENET, OCR_DET, OCR_REC, MODERATE_IMAGE)


def route_variant(name: str, **parameters: str) -> ModelSpec:
    """The route under another name with some parameters changed (e.g. `ocr_enabled="false"`);
    its version directory is a copy of the exported route's."""
    unknown = sorted(set(parameters) - set(MODERATE_IMAGE.parameters))
    if unknown:
        raise KeyError(f"route_variant: unknown parameters {unknown}; allowed: {sorted(MODERATE_IMAGE.parameters)}")
    return dataclasses.replace(MODERATE_IMAGE, name=name, parameters={**MODERATE_IMAGE.parameters, **parameters})
