"""THE audio preprocessing pipeline: encoded WAV/FLAC/OGG bytes -> Whisper's log-mel.

One definition, serialized twice at export:
- `model.dali`: decoding on the CPU (DALI has no GPU audio decoder), everything after
  it on the GPU, for Triton's native DALI backend on GPU hosts;
- `model.cpu.dali`: all on the CPU, run by Marquee's Python-based `dali` backend
  (marquee/backends/dali) where no GPU or native DALI backend exists.

What it computes, matching openai-whisper's `transcribe()` (which calls
`log_mel_spectrogram(audio, padding=N_SAMPLES)` once for the whole file):
1. decode, downmix to mono, resample to 16 kHz (DALI's windowed-sinc resampler),
   floats in [-1, 1] (16-bit PCM is divided by 32768, as ffmpeg/soundfile do);
2. append 30 s of zeros (PAD_SAMPLES), so every 30-second window the decoder slices
   starting inside the clip is complete, exactly like openai-whisper's padded mel;
3. power STFT: n_fft 400, periodic Hann window of 400 (torch.hann_window), hop 160,
   windows centred with reflect padding (torch.stft(center=True)); the last frame is
   dropped, as openai-whisper does (`stft[..., :-1]`);
4. 80 Slaney mel filters from 0 to 8 kHz with Slaney area normalisation
   (librosa.filters.mel defaults, which Whisper ships as mel_filters.npz);
5. log10(max(mel, 1e-10)), then max(x, x.max() - 8) with the max over the whole
   padded clip, then (x + 4) / 4.

Frames: `num_samples // 160 + PAD_FRAMES` (`PAD_FRAMES` = 3000); the clip's own content
is the first `num_samples // 160` frames (openai-whisper's `content_frames`).
Measured against transformers' WhisperFeatureExtractor on the same decoded samples:
see marquee/specs/audio.py (AUDIO_FEATURES.tolerance) and export/audio.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16_000
N_FFT = 400
HOP = 160
N_MELS = 80
CHUNK_SECONDS = 30
PAD_SAMPLES = CHUNK_SECONDS * SAMPLE_RATE  # openai-whisper's N_SAMPLES
PAD_FRAMES = PAD_SAMPLES // HOP  # 3000, openai-whisper's N_FRAMES
LOG_FLOOR = 1e-10
DYNAMIC_RANGE = 8.0  # log10 units below the clip's maximum that are kept
MAX_BATCH = 1  # one clip per execution: clips of different lengths cannot share a batch

INPUT_NAME = "audio"  # the external_source; also the Triton input name
OUTPUT_NAMES = ("mel", "num_samples")  # positional DALI outputs, in this order


def content_frames(num_samples: int) -> int:
    """Frames of the mel that belong to the clip itself (the rest is the zero padding)."""
    return num_samples // HOP


def periodic_hann(length: int = N_FFT) -> np.ndarray:
    """torch.hann_window(length) (periodic=True): 0.5 - 0.5 cos(2 pi n / length)."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)).astype(np.float32)


def audio_features_pipeline(device: str, batch_size: int = MAX_BATCH, num_threads: int = 1):
    """Build (not run) the pipeline; `device` is "gpu" (STFT and mel on the GPU) or "cpu".

    Built with `device_id=None` so serialization works without CUDA; the native DALI
    backend assigns the instance's GPU when it loads `model.dali`.
    """
    if device not in ("cpu", "gpu"):
        raise ValueError(f"audio_features_pipeline: device={device!r}; allowed: 'cpu', 'gpu'")
    from nvidia.dali import fn, types
    from nvidia.dali import math as dmath
    from nvidia.dali.pipeline import Pipeline

    pipe = Pipeline(batch_size=batch_size, num_threads=num_threads, device_id=None, prefetch_queue_depth=1)
    with pipe:
        encoded = fn.external_source(name=INPUT_NAME, dtype=types.UINT8, ndim=1)
        audio, _ = fn.decoders.audio(encoded, sample_rate=float(SAMPLE_RATE), downmix=True, dtype=types.FLOAT)
        num_samples = fn.cast(audio.shape(), dtype=types.INT64)  # shape [1], on the CPU
        if device == "gpu":
            audio = audio.gpu()
        # Zeros after the clip: the end of the clip sees zeros, not its own reflection,
        # and the decoder's last window is complete (openai-whisper pads the same way).
        padded = fn.pad(audio, axes=(0,), shape=fn.cast(num_samples + PAD_SAMPLES, dtype=types.INT32), fill_value=0.0)
        power = fn.spectrogram(
            padded,
            nfft=N_FFT,
            window_length=N_FFT,
            window_step=HOP,
            window_fn=periodic_hann().tolist(),
            power=2,
            center_windows=True,
            reflect_padding=True,
            layout="ft",
        )
        mel = fn.mel_filter_bank(
            power,
            sample_rate=float(SAMPLE_RATE),
            nfilter=N_MELS,
            freq_low=0.0,
            freq_high=SAMPLE_RATE / 2,
            normalize=True,  # Slaney: each triangle has unit area, as librosa's norm="slaney"
            mel_formula="slaney",
        )
        mel = mel[:, :-1]  # drop the last frame before the max, as openai-whisper does
        log_mel = dmath.log10(dmath.max(mel, LOG_FLOOR))
        floor = fn.reductions.max(log_mel) - DYNAMIC_RANGE  # one scalar per clip
        log_mel = dmath.max(log_mel, floor)
        features = (log_mel + 4.0) / 4.0
        pipe.set_outputs(features, num_samples)
    return pipe


def decoder_pipeline(batch_size: int = 1, num_threads: int = 1):
    """Only step 1 (decode, mono, 16 kHz) with the same settings: the samples the mel
    is computed from, for comparisons with a reference log-mel."""
    from nvidia.dali import fn, types
    from nvidia.dali.pipeline import Pipeline

    pipe = Pipeline(batch_size=batch_size, num_threads=num_threads, device_id=None, prefetch_queue_depth=1)
    with pipe:
        encoded = fn.external_source(name=INPUT_NAME, dtype=types.UINT8, ndim=1)
        audio, _ = fn.decoders.audio(encoded, sample_rate=float(SAMPLE_RATE), downmix=True, dtype=types.FLOAT)
        pipe.set_outputs(audio)
    return pipe


def serialize(device: str) -> bytes:
    return audio_features_pipeline(device).serialize()


def reference_log_mel(samples: np.ndarray) -> np.ndarray:
    """The reference: transformers' WhisperFeatureExtractor (its torch path, a copy of
    openai-whisper's `log_mel_spectrogram`) on the same 16 kHz samples plus 30 s of zeros."""
    from transformers import WhisperFeatureExtractor

    padded = np.concatenate([np.asarray(samples, np.float32), np.zeros(PAD_SAMPLES, np.float32)])
    extractor = WhisperFeatureExtractor(feature_size=N_MELS, sampling_rate=SAMPLE_RATE, hop_length=HOP, n_fft=N_FFT)
    return extractor._torch_extract_fbank_features(padded[None], device="cpu")[0]
