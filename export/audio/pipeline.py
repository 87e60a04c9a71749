"""`audio_features`: serialize the DALI log-mel pipeline (GPU and CPU variants) into the
model repository, checked against Whisper's reference log-mel; skipped when unchanged.

Validation signals are generated here (harmonic tones with a moving pitch, amplitude
envelopes, pauses and a little noise), so the export needs no TTS engine or downloads;
the tests add espeak-ng speech. Each is encoded as WAV 16 kHz, WAV 44.1 kHz, FLAC and
OGG Vorbis and pushed through the CPU pipeline, then compared with transformers'
WhisperFeatureExtractor (openai-whisper's torch log-mel):
- on the samples DALI itself decoded (the pipeline's own error; gated by the spec's
  tolerance);
- on samples decoded and resampled by FFmpeg (swresample, as openai-whisper and
  faster-whisper load audio): recorded, not gated; resamplers differ near 8 kHz.
"""

from __future__ import annotations

import logging
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np

from export import artifacts
from export.validate import ValidationReport
from marquee.preprocess import audio as preprocess_module
from marquee.specs.audio import AUDIO_FEATURES, AUDIO_MODELS
from marquee.transcription import speech

log = logging.getLogger(__name__)
CPU_PIPELINE = "model.cpu.dali"  # read by marquee/backends/dali
VALIDATION_SECONDS = 7.3  # not a multiple of the hop, on purpose


def _input_hash() -> str:
    versions = ",".join(f"{p}={metadata.version(p)}" for p in ("nvidia-dali-cuda120", "transformers", "av"))
    sources = [Path(preprocess_module.__file__), Path(__file__), Path(speech.__file__)]
    return artifacts.content_hash(repr(AUDIO_MODELS), versions, *sources)


def version_dir(repository: Path) -> Path:
    return Path(repository) / AUDIO_FEATURES.name / str(AUDIO_FEATURES.version)


def export_audio_features(repository: Path, force: bool = False) -> bool:
    """Install `model.dali` + `model.cpu.dali`; returns False when already current."""
    input_hash = _input_hash()
    target = version_dir(repository)
    if not force and artifacts.is_current(target, input_hash, AUDIO_FEATURES.artifact):
        return False
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp)
        (staged / "model.dali").write_bytes(preprocess_module.serialize("gpu"))
        (staged / CPU_PIPELINE).write_bytes(preprocess_module.serialize("cpu"))
        report = validate(staged / CPU_PIPELINE)
        log.info("%s", report.summary())
        report.raise_if_failed()
        target.mkdir(parents=True, exist_ok=True)
        (staged / CPU_PIPELINE).replace(target / CPU_PIPELINE)
        artifacts.install(
            staged / "model.dali",
            target,
            AUDIO_FEATURES.artifact,
            {"input_hash": input_hash, "validation": report.figures},
        )
    return True


def validation_signal(seconds: float = VALIDATION_SECONDS, rate: int = 44_100, seed: int = 0) -> np.ndarray:
    """Speech-like test audio in [-1, 1]: a gliding harmonic series under syllable-rate
    envelopes, two pauses of silence and faint noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    pitch = 140 + 60 * np.sin(2 * np.pi * 0.4 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 30) if k * 200 < rate / 2)
    envelope = np.clip(np.sin(2 * np.pi * 3.1 * t), 0, None) ** 2
    envelope[(t > 2.0) & (t < 2.6)] = 0.0
    envelope[(t > 5.0) & (t < 5.4)] = 0.0
    signal = 0.25 * voice * envelope + 0.002 * rng.standard_normal(t.size)
    return np.clip(signal, -1, 1)


def encoded_variants(seed: int = 0) -> dict[str, bytes]:
    """The validation signal in every container/rate the pipeline must handle."""
    wav_44k = speech.pcm16_wav(validation_signal(seed=seed), 44_100)
    return {
        "wav_16k": speech.transcode(wav_44k, "wav", 16_000),
        "wav_44k": wav_44k,
        "flac_44k": speech.transcode(wav_44k, "flac"),
        "ogg_44k": speech.transcode(wav_44k, "ogg"),
    }


def compare(serialized_cpu_pipeline: bytes, name: str, data: bytes, report: ValidationReport) -> None:
    """Add the checks and figures of one encoded file to `report`."""
    from nvidia.dali.pipeline import Pipeline

    pipe = Pipeline.deserialize(
        serialized_pipeline=serialized_cpu_pipeline, batch_size=1, num_threads=1, device_id=None, prefetch_queue_depth=1
    )
    pipe.build()
    decoder = preprocess_module.decoder_pipeline()
    decoder.build()
    encoded = np.frombuffer(data, np.uint8)
    mel_out, samples_out = pipe.run(audio=[encoded])
    mel = np.array(mel_out[0])
    num_samples = int(np.array(samples_out[0])[0])
    samples = np.array(decoder.run(audio=[encoded])[0][0])
    report.at_most(f"{name}_num_samples_mismatch", float(abs(num_samples - samples.size)), 0.0)
    tolerance = AUDIO_FEATURES.tolerance
    report.close_to(
        f"{name}_mel", preprocess_module.reference_log_mel(samples), mel, tolerance.atol, mean_atol=tolerance.mean_atol
    )
    # Informational: FFmpeg's decoding + resampling as the reference's input instead.
    ffmpeg = preprocess_module.reference_log_mel(speech.decode_16k(data))
    frames = min(ffmpeg.shape[1], mel.shape[1]) - preprocess_module.PAD_FRAMES
    diff = np.abs(ffmpeg[:, :frames] - mel[:, :frames])
    report.figures[f"{name}_mel_vs_ffmpeg_resampled_max_abs_diff"] = float(diff.max())
    report.figures[f"{name}_mel_vs_ffmpeg_resampled_mean_abs_diff"] = float(diff.mean())


def validate(cpu_pipeline: Path) -> ValidationReport:
    report = ValidationReport("audio_features (DALI log-mel vs WhisperFeatureExtractor)")
    serialized = cpu_pipeline.read_bytes()
    for name, data in encoded_variants().items():
        compare(serialized, name, data, report)
    return report
