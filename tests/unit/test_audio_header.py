"""Audio header checks (marquee/backends/dali/audio_header.py) against files ffmpeg and
Python's `wave` write, and against headers that lie (the fuzzer's 1 Hz WAV)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from marquee.backends.dali.audio_header import AudioRejected, check_audio
from perf.fuzz import payloads

TWO_HOURS = 7200.0


def test_an_honest_wav_passes_with_its_duration():
    header = check_audio(payloads.honest_wav(0.5), TWO_HOURS)
    assert (header.format, header.sample_rate, header.channels) == ("wav", 16_000, 1)
    assert header.duration_s == pytest.approx(0.5)


@pytest.mark.parametrize("rate", [0, 1, 100, 3_999, 384_001, 2**32 - 1])
def test_a_wav_header_with_an_absurd_sample_rate_is_refused(rate):
    with pytest.raises(AudioRejected, match=f"wav header says {rate} Hz; allowed: 4000 to 384000 Hz"):
        check_audio(payloads.wav(rate, 1, 16, 100), TWO_HOURS)


def test_a_wav_with_no_channels_is_refused():
    with pytest.raises(AudioRejected, match="0 channels; allowed: 1 to 32"):
        check_audio(payloads.wav(16_000, 0, 16, 100), TWO_HOURS)


def test_the_duration_counts_the_bytes_present_not_the_size_the_data_chunk_claims():
    lying = payloads.wav(8_000, 1, 8, 8_000, claimed_data_bytes=2**32 - 1)
    assert check_audio(lying, TWO_HOURS).duration_s == pytest.approx(1.0)
    with pytest.raises(AudioRejected, match=r"wav header says 1.0 s; the limit \(max_duration_s\) is 0 s"):
        check_audio(lying, 0.5)


@pytest.mark.parametrize("data", [b"", b"ID3\x04 an mp3", b"RIFF\x00\x00\x00\x00WAVEnot really", b"OggS\x00"])
def test_what_is_not_wav_flac_or_ogg_is_refused_with_a_reason(data):
    with pytest.raises(AudioRejected):
        check_audio(data, TWO_HOURS)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg to write FLAC and OGG files")
@pytest.mark.parametrize(("suffix", "codec"), [(".flac", "flac"), (".ogg", "libvorbis"), (".opus", "libopus")])
def test_flac_and_ogg_headers_written_by_ffmpeg_are_read(tmp_path: Path, suffix, codec):
    path = tmp_path / f"tone{suffix}"
    rate = 48_000 if codec == "libopus" else 22_050
    command = ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"sine=frequency=440:duration=1.5:sample_rate={rate}",
               "-ac", "2", "-c:a", codec, str(path)]  # fmt: skip
    if subprocess.run(command, capture_output=True).returncode != 0:
        pytest.skip(f"this ffmpeg cannot encode {codec}")
    header = check_audio(path.read_bytes(), TWO_HOURS)
    assert (header.sample_rate, header.channels) == (rate, 2)
    if codec == "flac":
        assert header.duration_s == pytest.approx(1.5)
