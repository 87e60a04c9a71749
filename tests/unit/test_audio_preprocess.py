"""The DALI log-mel pipeline against Whisper's conventions, without a server."""

from __future__ import annotations

import numpy as np
import pytest

from export.audio.pipeline import validation_signal
from marquee.preprocess import audio as preprocess
from marquee.specs.audio import AUDIO_FEATURES
from marquee.transcription import speech


def _run(serialized: bytes, data: bytes) -> tuple[np.ndarray, int]:
    from nvidia.dali.pipeline import Pipeline

    pipe = Pipeline.deserialize(
        serialized_pipeline=serialized, batch_size=1, num_threads=1, device_id=None, prefetch_queue_depth=1
    )
    pipe.build()
    mel, num_samples = pipe.run(audio=[np.frombuffer(data, np.uint8)])
    return np.array(mel[0]), int(np.array(num_samples[0])[0])


@pytest.fixture(scope="module")
def cpu_pipeline() -> bytes:
    return preprocess.serialize("cpu")


def test_dali_mel_filters_equal_whispers_slaney_filters():
    """Feed the identity as a 201-bin spectrogram: the output is the filter matrix itself."""
    from nvidia.dali import fn, types
    from nvidia.dali.pipeline import Pipeline
    from transformers import WhisperFeatureExtractor

    pipe = Pipeline(batch_size=1, num_threads=1, device_id=None, prefetch_queue_depth=1)
    with pipe:
        spectrum = fn.external_source(name="x", dtype=types.FLOAT, ndim=2, layout="ft")
        pipe.set_outputs(
            fn.mel_filter_bank(
                spectrum, sample_rate=16_000.0, nfilter=80, freq_low=0.0, freq_high=8_000.0, mel_formula="slaney"
            )
        )
    pipe.build()
    filters = np.array(pipe.run(x=[np.eye(preprocess.N_FFT // 2 + 1, dtype=np.float32)])[0][0])
    reference = WhisperFeatureExtractor().mel_filters.T  # librosa.filters.mel(16000, 400, 80), norm="slaney"
    assert filters.shape == reference.shape == (80, 201)
    # Measured 5.3e-8 absolute, 2e-6 of the largest weight: float32 rounding only.
    assert np.abs(filters - reference).max() < 1e-5 * reference.max()


def test_window_is_torchs_periodic_hann():
    import torch

    assert np.allclose(preprocess.periodic_hann(), torch.hann_window(preprocess.N_FFT).numpy(), atol=1e-7)


@pytest.mark.parametrize("seconds", [0.01, 1.0, 7.3])
def test_pipeline_equals_reference_log_mel_of_the_padded_clip(cpu_pipeline, seconds):
    samples = validation_signal(seconds=seconds, rate=16_000, seed=3)
    wav = speech.pcm16_wav(samples, 16_000)
    mel, num_samples = _run(cpu_pipeline, wav)
    assert num_samples == samples.size
    assert mel.shape == (80, preprocess.content_frames(num_samples) + preprocess.PAD_FRAMES)
    # The reference sees the same 16-bit samples, scaled as decoders do (/ 32768).
    pcm = np.frombuffer(wav[44:], "<i2").astype(np.float32) / 32768.0
    reference = preprocess.reference_log_mel(pcm)
    assert np.abs(reference - mel).max() <= AUDIO_FEATURES.tolerance.atol


def test_dynamic_range_is_taken_over_the_whole_clip(cpu_pipeline):
    """A loud burst at the end raises the floor at the start: one max per clip, not per window."""
    quiet = 0.001 * np.sin(2 * np.pi * 440 * np.arange(16_000 * 40) / 16_000)
    loud = quiet.copy()
    loud[-16_000:] *= 900
    mel_quiet, _ = _run(cpu_pipeline, speech.pcm16_wav(quiet, 16_000))
    mel_loud, _ = _run(cpu_pipeline, speech.pcm16_wav(loud, 16_000))
    assert mel_loud.max() > mel_quiet.max() + 0.5
    floor_loud = mel_loud.max() - preprocess.DYNAMIC_RANGE / 4
    assert np.isclose(mel_loud[:, :100].min(), floor_loud, atol=1e-5)  # the first window is clamped by the burst


def test_gpu_and_cpu_serializations_differ_only_in_devices():
    gpu, cpu = preprocess.serialize("gpu"), preprocess.serialize("cpu")
    assert gpu != cpu and b"gpu" in gpu and b"gpu" not in cpu
    with pytest.raises(ValueError, match="allowed: 'cpu', 'gpu'"):
        preprocess.audio_features_pipeline("tpu")
