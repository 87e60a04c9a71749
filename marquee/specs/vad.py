"""Spec of `silero_vad`: Silero VAD v6 (MIT), as shipped inside the faster-whisper package.

The `transcribe` route's batched mode calls it through BLS to cut long audio at silence
(marquee/routes/transcribe/vad.py). The graph scores a sequence of 32 ms frames (512
samples at 16 kHz, each after the 64 samples before it) and carries an LSTM state (h, c)
that the caller passes from one call to the next, so a clip is scored in blocks.
Export (export/vad.py) copies the file and checks it against faster-whisper's own
wrapper on speech and silence.
"""

from __future__ import annotations

from marquee.specs.base import DataType, LatencyBudget, ModelSpec, Precision, TensorSpec, Tolerance

FAMILY = "transcription"
FRAME_INPUT = 576  # 512 new samples + 64 of context
STATE = (1, 1, 128)

SILERO_VAD = ModelSpec(
    name="silero_vad",
    family=FAMILY,
    precision=Precision.FP32,
    description="Silero VAD v6: speech probability per 32 ms frame of 16 kHz audio, LSTM state in and out",
    inputs=(
        TensorSpec("input", DataType.FP32, ("frames", FRAME_INPUT), description="frames in time order, with context"),
        TensorSpec("h", DataType.FP32, STATE, description="LSTM state from the previous call (zeros at the start)"),
        TensorSpec("c", DataType.FP32, STATE),
    ),
    outputs=(
        TensorSpec("speech_probs", DataType.FP32, ("frames",), value_range=(0.0, 1.0)),
        TensorSpec("hn", DataType.FP32, STATE),
        TensorSpec("cn", DataType.FP32, STATE),
    ),
    # The frames of one call are one sequence (the state runs through them): no batching.
    max_batch_size=0,
    dynamic_batching=None,
    parameters={"intra_op_thread_count": "1", "inter_op_thread_count": "1"},
    # Served file = shipped file; checked against faster-whisper's wrapper (same ONNX
    # Runtime), so only reordered arithmetic can differ.
    tolerance=Tolerance(atol=1e-4, mean_atol=1e-5),
    # 4096 frames (131 s of audio) per call, measured ~0.25 s on one core.
    budget=LatencyBudget(perf_latency_p99_us=2_000_000),
)

VAD_MODELS = (SILERO_VAD,)
