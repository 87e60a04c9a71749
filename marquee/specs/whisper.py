"""Specs of Whisper speech recognition (tiny.en, shipped as CTranslate2 weights).

transcribe / transcribe_int8 (Python BLS: PyAV decoding, log-mel per window or chunk,
  │                          batching, greedy decoding, segments)
  ├─ silero_vad            (ONNX, marquee/specs/vad.py) batched mode: speech per 32 ms
  ├─ whisper_encoder_fp32  (ONNX, dynamically batched across clips and requests)
  │  whisper_encoder_int8    30 s log-mel -> cross-attention keys/values of every layer
  └─ whisper_decoder_fp32  (ONNX, run in the route's process, see below)
     whisper_decoder_int8    one step: tokens + self-attention cache -> logits, new cache

Why the decoder runs inside the route rather than through BLS: every decoder step reads
all cross-attention keys/values (4 layers x 2 x 1500 x 384 floats = 18 MB per clip) and
the growing self-attention cache. Passed through BLS, that would cross process
boundaries ~100 times per window. In-process, the caches stay ONNX Runtime values that
each step hands to the next. The decoder models are still served (their configs load
the same files), so a client or a GPU host can call them directly.
"""

from __future__ import annotations

from dataclasses import dataclass

from marquee.specs.audio import LIMITS as AUDIO_LIMITS
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

FAMILY = "transcription"


@dataclass(frozen=True)
class WhisperDims:
    n_mels: int = 80
    n_frames: int = 3000  # 30 s of 10 ms frames
    n_audio_ctx: int = 1500
    d_model: int = 384
    n_heads: int = 6
    n_layers: int = 4  # decoder layers (each has its own cross-attention keys/values)
    n_vocab: int = 51864
    n_text_ctx: int = 448

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


TINY_EN = WhisperDims()
BASE = WhisperDims(d_model=512, n_heads=8, n_layers=6, n_vocab=51865)


@dataclass(frozen=True)
class TranscribeLimits:
    # Longest clip a request may carry. A 2-hour clip is 240 windows; the route decodes
    # it in one request (minutes of CPU), so clients should set a long timeout.
    max_duration_s: float = AUDIO_LIMITS.max_duration_s
    max_clips: int = 64  # clips per request
    # Windows per encoder call (also the encoder's max_batch_size). Measured in-process on
    # 2 cores (INT8, no arena): 8 windows 2.2 s and 1,000 MB peak, 4 windows 1.0 s and
    # 580 MB: the same time per window for half the memory (attention is 1500 x 1500).
    encoder_batch: int = 4
    # Batched mode: chunks per lockstep round. Each holds its cross K/V (18 MB for tiny.en)
    # while it decodes, and the next round's are encoding meanwhile: 16 took the route past
    # 2 GB on a 2-hour file, 8 costs the same CPU seconds per audio second (10-minute file).
    decode_batch: int = 8
    decoder_batch: int = 8  # the served decoder step's max_batch_size (clients that decode themselves)


# "batched" (VAD chunks) or "sequential" (openai-whisper's seek); a request may choose
# with the parameter `mode`.
DEFAULT_MODE = "batched"
# Batched transcripts may be worse than sequential ones by at most this WER (absolute)
# on espeak speech: chunks cut at silence lose the previous window's context, and a
# segment at a chunk's end is kept as decoded instead of re-decoded from its start.
BATCHED_MAX_WER_DELTA = 0.05


LIMITS = TranscribeLimits()


def cross_kv_tensors(dims: WhisperDims) -> tuple[TensorSpec, ...]:
    """Per decoder layer: keys pre-transposed [heads, head_dim, 1500] (so q @ K needs no
    transpose at every step) and values [heads, 1500, head_dim]."""
    tensors = []
    for layer in range(dims.n_layers):
        tensors.append(TensorSpec(f"cross_k_{layer}", DataType.FP32, (dims.n_heads, dims.head_dim, dims.n_audio_ctx)))
        tensors.append(TensorSpec(f"cross_v_{layer}", DataType.FP32, (dims.n_heads, dims.n_audio_ctx, dims.head_dim)))
    return tuple(tensors)


def self_kv_tensors(dims: WhisperDims, prefix: str, length_axis: str) -> tuple[TensorSpec, ...]:
    return tuple(
        TensorSpec(f"{prefix}_{kind}_{layer}", DataType.FP32, (dims.n_heads, length_axis, dims.head_dim))
        for layer in range(dims.n_layers)
        for kind in ("k", "v")
    )


def encoder_spec(
    precision: Precision,
    tolerance: Tolerance,
    dims: WhisperDims = TINY_EN,
    prefix: str = "whisper",
    label: str = "tiny.en",
) -> ModelSpec:
    return ModelSpec(
        name=f"{prefix}_encoder_{precision.value}",
        family=FAMILY,
        precision=precision,
        description=f"Whisper {label} encoder + every decoder layer's cross-attention K/V ({precision.value.upper()})",
        inputs=(
            TensorSpec(
                "input_features", DataType.FP32, (dims.n_mels, dims.n_frames), description="30 s normalised log-mel"
            ),
        ),
        outputs=(
            TensorSpec("encoder_hidden", DataType.FP32, (dims.n_audio_ctx, dims.d_model)),
            *cross_kv_tensors(dims),
        ),
        max_batch_size=LIMITS.encoder_batch,
        # Windows of concurrent requests share an encoder call; a window costs ~0.3 s of
        # CPU, so a few ms of waiting is cheap.
        dynamic_batching=DynamicBatching(max_queue_delay_us=5_000),
        # No CPU arena: it would keep a call's activations (the 1500 x 1500 attention of
        # every window) for the process's life; the native backend reads the same key.
        parameters={"intra_op_thread_count": "2", "inter_op_thread_count": "1", "enable_mem_arena": "0"},
        tolerance=tolerance,
        budget=LatencyBudget(perf_latency_p99_us=2_000_000),
    )


def decoder_spec(
    precision: Precision,
    tolerance: Tolerance,
    dims: WhisperDims = TINY_EN,
    prefix: str = "whisper",
    label: str = "tiny.en",
) -> ModelSpec:
    return ModelSpec(
        name=f"{prefix}_decoder_{precision.value}",
        family=FAMILY,
        precision=precision,
        description=(
            f"Whisper {label} decoder step with self-attention cache ({precision.value.upper()}); "
            "past_length may be 0 (first step)"
        ),
        inputs=(
            TensorSpec(
                "input_ids", DataType.INT64, ("tokens",), description="new tokens (1 per step after the prompt)"
            ),
            *cross_kv_tensors(dims),
            *self_kv_tensors(dims, "past", "past_length"),
        ),
        outputs=(
            TensorSpec("logits", DataType.FP32, (dims.n_vocab,), description="next-token logits of the last position"),
            *self_kv_tensors(dims, "present", "present_length"),
        ),
        max_batch_size=LIMITS.decoder_batch,
        dynamic_batching=None,
        # Whisper's text context: no decode step has more tokens, before or new. Larger
        # sizes are refused (a fuzzed step at 1,500 drove a stub past 4 GB).
        axis_limits={"tokens": dims.n_text_ctx, "past_length": dims.n_text_ctx},
        tolerance=tolerance,
        budget=LatencyBudget(perf_latency_p99_us=20_000),
    )


# FP32 ONNX vs PyTorch: the same arithmetic reordered. Measured on an espeak sentence:
# encoder hidden max 6e-4 / mean 2e-6, decoder logits max 4e-5; greedy tokens identical.
# FP32 kernels differ between CPUs (ONNX Runtime vs PyTorch, AVX2 vs AVX-512): on a 2-core
# AMD EPYC one of the 1.15M hidden values of the validation batch differed by 3.5e-3
# (reference -1.40), while the median difference was 8e-7 and the 99.99th percentile
# 1.1e-4. The mean bound is the tight check; the worst-case bound allows such outliers.
WHISPER_ENCODER_FP32 = encoder_spec(Precision.FP32, Tolerance(atol=5e-3, mean_atol=1e-4))
WHISPER_DECODER_FP32 = decoder_spec(Precision.FP32, Tolerance(atol=2e-3, mean_atol=1e-4))
# Dynamic INT8 (MatMul weights per channel with reduce_range, activations per call):
# measured encoder hidden mean 0.10 (max 15 on Whisper's few outlier channels) and decoder
# logits mean 0.33 / max 2.3. The transcript is what matters, checked as a WER delta
# (`INT8_MAX_WER_DELTA`); the logit tolerances only catch a broken quantization.
WHISPER_ENCODER_INT8 = encoder_spec(Precision.INT8, Tolerance(atol=float("inf"), mean_atol=0.25))
WHISPER_DECODER_INT8 = decoder_spec(Precision.INT8, Tolerance(atol=float("inf"), mean_atol=0.6))
# INT8 transcripts may be worse than FP32 by at most this WER (absolute) on espeak speech.
# Measured served (DALI mel): >60 s clip 0.080 -> 0.112; clip corpus 0.096 -> 0.112;
# 10-minute file 0.069 -> 0.082. On faster-whisper's mel the same corpus went 0.109 ->
# 0.096: on ~500 words the INT8/FP32 difference is a handful of flipped words, either way.
INT8_MAX_WER_DELTA = 0.05


def transcribe_spec(name: str, encoder: ModelSpec, decoder: ModelSpec, decoder_threads: int) -> ModelSpec:
    return ModelSpec(
        name=name,
        family=FAMILY,
        precision=encoder.precision,
        description=(
            f"speech to timed segments: PyAV decode -> silero_vad chunks (batched) or 30 s seek windows "
            f"(sequential) -> {encoder.name} -> greedy {decoder.name} with timestamps"
        ),
        backend="python",
        artifact="model.py",
        inputs=(
            TensorSpec("audio", DataType.BYTES, ("clips",), description="encoded audio or video file, one per clip"),
        ),
        outputs=(TensorSpec("result", DataType.BYTES, ("clips",), description="one JSON object per clip"),),
        # The clip list is the batch; the route batches its models itself.
        max_batch_size=0,
        dynamic_batching=None,
        # Two instances: one request's decoding (route process) overlaps another's encoding.
        instance_groups=(InstanceGroup(count=2),),
        parameters={
            "vad_model": "silero_vad",
            # Measured (perf/bench_transcription.py): see README "Transcription".
            "default_mode": DEFAULT_MODE,
            # Chunks decoded in lockstep per round in batched mode (across the clips of
            # the request); each costs its cross K/V (18 MB for tiny.en) while decoding.
            "decode_batch": str(LIMITS.decode_batch),
            "encoder_model": encoder.name,
            # The decoder runs in the route's own process (see above), from a copy of
            # `decoder_model`'s file in the route's version folder: no model reads another's.
            "decoder_model": decoder.name,
            "decoder_file": "decoder.onnx",
            "decoder_threads": str(decoder_threads),
            "rules": "decoding.json",
            "surfaces": "surfaces.yaml",  # policies/surfaces.yaml, copied at export
            "tokenizer": "tokenizer.json",
            "max_duration_s": str(LIMITS.max_duration_s),
            "max_clips": str(LIMITS.max_clips),
            "encoder_batch": str(LIMITS.encoder_batch),
        },
        # Deadlines of the BLS stages: scoring one block of 131 s with the VAD, and encoding
        # one chunk of `encoder_batch` windows under load. A late stage fails that clip (or
        # those clips) with an error; the rest of the request is still transcribed.
        stage_budgets_ms={"vad": 30_000.0, "encoder": 60_000.0},
        composes=("vad_model", "encoder_model"),
        tolerance=Tolerance(atol=0.0),
        budget=LatencyBudget(perf_latency_p99_us=30_000_000),
    )


# Decoder threads, measured per step at batch 1 on 2 cores: FP32 7.4 ms with 1 thread,
# 4.4 ms with 2 (its output projection reads 80 MB of weights); INT8 3.1 ms with 1 and
# no gain from a second thread.
TRANSCRIBE = transcribe_spec("transcribe", WHISPER_ENCODER_FP32, WHISPER_DECODER_FP32, decoder_threads=2)
TRANSCRIBE_INT8 = transcribe_spec("transcribe_int8", WHISPER_ENCODER_INT8, WHISPER_DECODER_INT8, decoder_threads=1)


@dataclass(frozen=True)
class WhisperVariant:
    """One Whisper checkpoint served as encoder + decoder (FP32, INT8) and two routes."""

    key: str  # `marquee export transcription --model KEY`
    label: str
    multilingual: bool
    encoder_fp32: ModelSpec
    encoder_int8: ModelSpec
    decoder_fp32: ModelSpec
    decoder_int8: ModelSpec
    route_fp32: ModelSpec
    route_int8: ModelSpec

    @property
    def models(self) -> tuple[ModelSpec, ...]:
        return (
            self.encoder_fp32,
            self.encoder_int8,
            self.decoder_fp32,
            self.decoder_int8,
            self.route_fp32,
            self.route_int8,
        )


TINY_EN_VARIANT = WhisperVariant(
    "tiny.en",
    "tiny.en",
    False,
    WHISPER_ENCODER_FP32,
    WHISPER_ENCODER_INT8,
    WHISPER_DECODER_FP32,
    WHISPER_DECODER_INT8,
    TRANSCRIBE,
    TRANSCRIBE_INT8,
)
WHISPER_MODELS: tuple[ModelSpec, ...] = TINY_EN_VARIANT.models


def _base_variant() -> WhisperVariant:
    """Whisper base (multilingual, 74M parameters): language identification, transcription
    in 99 languages and translation into English. About 3x tiny.en's compute per window,
    so it is exported on demand (`marquee export transcription --model base`), not by
    `marquee up`. Tolerances as tiny.en's (same arithmetic, validated the same way)."""
    named = {"prefix": "whisper_base", "label": "base", "dims": BASE}
    encoder_fp32 = encoder_spec(Precision.FP32, WHISPER_ENCODER_FP32.tolerance, **named)
    encoder_int8 = encoder_spec(Precision.INT8, WHISPER_ENCODER_INT8.tolerance, **named)
    decoder_fp32 = decoder_spec(Precision.FP32, WHISPER_DECODER_FP32.tolerance, **named)
    decoder_int8 = decoder_spec(Precision.INT8, WHISPER_DECODER_INT8.tolerance, **named)
    return WhisperVariant(
        "base",
        "base",
        True,
        encoder_fp32,
        encoder_int8,
        decoder_fp32,
        decoder_int8,
        transcribe_spec("transcribe_base", encoder_fp32, decoder_fp32, decoder_threads=2),
        transcribe_spec("transcribe_base_int8", encoder_int8, decoder_int8, decoder_threads=1),
    )


BASE_VARIANT = _base_variant()
WHISPER_BASE_MODELS = BASE_VARIANT.models
VARIANTS = {variant.key: variant for variant in (TINY_EN_VARIANT, BASE_VARIANT)}
