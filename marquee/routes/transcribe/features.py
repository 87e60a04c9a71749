"""Whisper's log-mel, computed window by window from 16 kHz samples (numpy only).

openai-whisper computes the log-mel of the whole clip at once (plus 30 s of zero
padding), then floors it at the clip's maximum minus 8 and scales it. For a 2-hour file
that is 720k frames x 80 bins, and the STFT before the mel is 2.5x larger: gigabytes.
Here any range of frames is computed on its own, bit for bit the frames the whole-clip
STFT would give (frame i sees samples [160 i - 200, 160 i + 200), reflected at the
clip's start, zeros after its end), so the route holds one window's features at a time:
- `ClipMel` (sequential mode): the clip's maximum is found in one streaming pass, then
  windows are normalised with it, exactly as the whole-clip computation;
- `chunk_mel` (batched mode): a chunk cut at silence is its own clip (normalised by its
  own maximum), as faster-whisper's batched pipeline does.

The steps match marquee/preprocess/audio.py (the DALI pipeline) and openai-whisper:
periodic Hann of 400, hop 160, power STFT, 80 Slaney mel filters 0-8 kHz with Slaney
area normalisation, log10 floored at 1e-10. Checked against transformers'
WhisperFeatureExtractor in tests/unit/test_transcribe_features.py.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16_000
N_FFT = 400
HOP = 160
N_MELS = 80
N_FRAMES = 3000  # one 30-second window
PAD_FRAMES = N_FRAMES  # openai-whisper appends 30 s of zeros before the STFT
LOG_FLOOR = 1e-10
DYNAMIC_RANGE = 8.0
BLOCK_FRAMES = 3000  # frames computed per numpy call: bounds the STFT's temporary memory


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above."""
    hz = np.asarray(hz, np.float64)
    linear = hz / (200.0 / 3.0)
    log_step = np.log(6.4) / 27.0
    return np.where(hz >= 1000.0, 15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) / log_step, linear)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(mel >= 15.0, 1000.0 * np.exp(log_step * (mel - 15.0)), mel * (200.0 / 3.0))


def mel_filters(n_mels: int = N_MELS, n_fft: int = N_FFT, rate: int = SAMPLE_RATE) -> np.ndarray:
    """[n_mels, n_fft // 2 + 1] triangles between consecutive mel points, each scaled to
    unit area (Slaney normalisation)."""
    fft_hz = np.linspace(0.0, rate / 2, n_fft // 2 + 1)
    points = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(rate / 2), n_mels + 2))
    lower, centre, upper = points[:-2, None], points[1:-1, None], points[2:, None]
    rising = (fft_hz[None] - lower) / (centre - lower)
    falling = (upper - fft_hz[None]) / (upper - centre)
    triangles = np.maximum(0.0, np.minimum(rising, falling))
    return (triangles * (2.0 / (points[2:] - points[:-2]))[:, None]).astype(np.float32)


FILTERS = mel_filters()
WINDOW = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)


def clip_frames(num_samples: int) -> int:
    """Frames of the padded clip's mel (openai-whisper drops the STFT's last frame)."""
    return num_samples // HOP + PAD_FRAMES


def _excerpt(samples: np.ndarray, start: int, stop: int) -> np.ndarray:
    """samples[start:stop] of the clip extended by reflection before 0 and zeros after its end."""
    out = np.zeros(stop - start, np.float32)
    if start < 0:  # torch.stft(center=True) reflects: position -k reads sample k
        reflected = -(start + np.arange(min(stop, 0) - start))
        inside = reflected < samples.size  # beyond the clip, the padding's zeros
        out[: reflected.size][inside] = samples[reflected[inside]]
    begin, end = max(start, 0), min(stop, samples.size)
    if end > begin:
        out[begin - start : end - start] = samples[begin:end]
    return out


def log_mel(samples: np.ndarray, first: int, count: int) -> np.ndarray:
    """log10 mel [80, count] of frames first .. first + count - 1 of the padded clip."""
    out = np.empty((N_MELS, count), np.float32)
    for block in range(0, count, BLOCK_FRAMES):
        n = min(BLOCK_FRAMES, count - block)
        start = (first + block) * HOP - N_FFT // 2
        excerpt = _excerpt(samples, start, start + (n - 1) * HOP + N_FFT)
        frames = np.lib.stride_tricks.sliding_window_view(excerpt, N_FFT)[::HOP] * WINDOW
        power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2
        out[:, block : block + n] = np.log10(np.maximum(FILTERS @ power.T.astype(np.float32), LOG_FLOOR))
    return out


def normalise(log_values: np.ndarray, clip_max: float) -> np.ndarray:
    return (np.maximum(log_values, clip_max - DYNAMIC_RANGE) + 4.0) / 4.0


class ClipMel:
    """Sequential mode's features: windows of one clip, normalised by the clip's maximum."""

    def __init__(self, samples: np.ndarray):
        self.samples = samples
        self.frames = clip_frames(samples.size)
        self.log_max = max(
            float(log_mel(samples, start, min(BLOCK_FRAMES, self.frames - start)).max())
            for start in range(0, self.frames, BLOCK_FRAMES)
        )
        # Normalised value of the loudest bin (what windows.silent_window compares to).
        self.clip_max = (self.log_max + 4.0) / 4.0

    def window(self, first: int, count: int) -> np.ndarray:
        return normalise(log_mel(self.samples, first, count), self.log_max)


# Frames after the content that still see some of its samples (the STFT window reaches
# 200 samples past its centre); every later frame of the padding is log10(1e-10) exactly.
TAIL_FRAMES = N_FFT // (2 * HOP) + 1


def chunk_mel(samples: np.ndarray) -> np.ndarray:
    """Batched mode: a chunk of at most 30 s as its own clip, as one zero-padded window
    [80, 3000] normalised by the chunk's own maximum (over the chunk and its padding).

    Only the frames that see audio are computed: the rest of the padding is the floor
    value, which can only matter to the maximum of an all-silent chunk."""
    content = min(samples.size // HOP, N_FRAMES)
    values = log_mel(samples, 0, content + TAIL_FRAMES)
    clip_max = max(float(values.max()), float(np.log10(LOG_FLOOR)))
    window = np.zeros((N_MELS, N_FRAMES), np.float32)
    window[:, :content] = normalise(values[:, :content], clip_max)
    return window
