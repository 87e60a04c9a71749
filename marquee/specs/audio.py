"""Spec of `audio_features`: encoded audio bytes -> Whisper's 80-bin log-mel (DALI).

The pipeline is marquee/preprocess/audio.py; the `transcribe` route calls this model
through BLS and slices 30-second windows (3000 frames) out of the returned mel.
"""

from __future__ import annotations

from dataclasses import dataclass

from marquee.preprocess.audio import INPUT_NAME, MAX_BATCH, N_MELS
from marquee.specs.base import (
    DataType,
    LatencyBudget,
    ModelSpec,
    Precision,
    TensorSpec,
    Tolerance,
)

FAMILY = "transcription"


@dataclass(frozen=True)
class AudioLimits:
    # 2 hours of 16 kHz 16-bit mono WAV is 230 MB; FLAC/OGG hours are far smaller. A file
    # above this is refused before decoding (the pipeline holds the whole clip's STFT).
    max_input_bytes: int = 512 * 1024 * 1024
    # The longest clip a header may state; checked before decoding, since the decoder
    # allocates what the header promises (marquee/backends/dali/audio_header.py).
    max_duration_s: float = 2 * 60 * 60


LIMITS = AudioLimits()

# Measured (export/audio, tests/integration/test_audio_features.py) against transformers'
# WhisperFeatureExtractor (openai-whisper's torch log-mel) on the samples DALI decoded:
# max |diff| 6.5e-5, mean 1.3e-7 over espeak-ng speech in WAV 16/44.1 kHz, FLAC and OGG
# (float32 STFT rounding; DALI's Slaney filters equal librosa's within 5.3e-8). The
# bound leaves a 3x margin.
MEL_TOLERANCE = Tolerance(atol=2e-4, mean_atol=1e-6)

AUDIO_FEATURES = ModelSpec(
    name="audio_features",
    family=FAMILY,
    precision=Precision.FP32,
    description=(
        "DALI: decode WAV/FLAC/OGG, mono, resample to 16 kHz, Whisper's 80-bin log-mel of the whole clip "
        "plus 30 s of zero padding (frames = num_samples // 160 + 3000)"
    ),
    backend="dali",
    artifact="model.dali",
    inputs=(TensorSpec(INPUT_NAME, DataType.UINT8, ("bytes",), description="encoded WAV, FLAC or OGG file"),),
    outputs=(
        TensorSpec("mel", DataType.FP32, (N_MELS, "frames"), description="normalised log-mel, (x + 4) / 4"),
        TensorSpec("num_samples", DataType.INT64, (1,), description="decoded samples at 16 kHz"),
    ),
    # Requests with different byte lengths never share a batch (no ragged batching), so
    # one item per execution; concurrency comes from the route's concurrent BLS calls.
    max_batch_size=MAX_BATCH,
    dynamic_batching=None,
    # AUTO: a GPU instance under the native DALI backend on GPU hosts, a CPU one here.
    parameters={
        "num_threads": "1",
        "max_input_bytes": str(LIMITS.max_input_bytes),
        "max_duration_s": str(LIMITS.max_duration_s),
        "media": "audio",
    },
    tolerance=MEL_TOLERANCE,
    budget=LatencyBudget(perf_latency_p99_us=500_000),
)

AUDIO_MODELS = (AUDIO_FEATURES,)
