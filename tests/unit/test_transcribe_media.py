"""PyAV decoding of the route (media.py): formats ffmpeg makes, and clear errors."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from marquee.routes.transcribe.media import ClipTooLong, MediaError, decode_audio

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the ffmpeg tool is not installed")


def _make(tmp_path, name: str, *options: str) -> bytes:
    path = tmp_path / name
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=2:sample_rate=44100",
         *options, str(path)], check=True, timeout=60,
    )  # fmt: skip
    return path.read_bytes()


def test_mp3_decodes_to_16k_mono_of_the_right_length(tmp_path):
    samples = decode_audio(_make(tmp_path, "tone.mp3", "-c:a", "libmp3lame"), "clip 0")
    assert samples.pcm.dtype == np.int16 and samples.pcm.ndim == 1
    assert samples.size / 16_000 == pytest.approx(2.0, abs=0.06)
    window = samples[4000:20000]
    assert window.dtype == np.float32 and 0.1 < np.abs(window).max() < 1.0  # read back as float in [-1, 1)
    spectrum = np.abs(np.fft.rfft(window))
    assert np.argmax(spectrum) == pytest.approx(440, abs=2)  # 16000 samples: 1 Hz per bin


def test_over_the_limit_stops_decoding_early(tmp_path):
    data = _make(tmp_path, "tone.flac")
    with pytest.raises(ClipTooLong):
        decode_audio(data, "clip 0", max_seconds=1.0)


def test_empty_and_unknown_bytes_name_the_clip_and_what_is_accepted():
    with pytest.raises(MediaError, match=r"clip 4: `audio` is empty \(0 bytes\); expected an audio file"):
        decode_audio(b"", "clip 4")
    with pytest.raises(MediaError, match=r"clip 1: not a known media container \(starts with 68 69\)"):
        decode_audio(b"hi", "clip 1")


def test_a_wav_of_0_bit_samples_is_the_clips_error_not_a_crash():
    """Found by the 200-case long fuzz profile: FFmpeg opens such a WAV but has no decoder
    for it, so the stream has no codec context; the route crashed with AttributeError (500)."""
    from perf.fuzz import payloads

    zero_bits = payloads.wav(sample_rate=16_000, channels=1, bits=0, frames=100)
    with pytest.raises(MediaError, match=r"clip 2: wav \(audio: unknown codec\): FFmpeg has no decoder for this audio"):
        decode_audio(zero_bits, "clip 2")
