"""The `transcribe` route on the media files people have, on a real tritonserver.

Files are made at test time by the ffmpeg command-line tool (Debian's, independent of
the PyAV/FFmpeg libraries the route decodes with) from one espeak-ng clip of a few
seconds: MP3, M4A (AAC), Opus in WebM, and MP4/MOV/MKV video files with that audio
track. A corrupt container and a video without audio get their own errors, naming what
FFmpeg found, while the other clips are transcribed and the server keeps serving.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from marquee.transcription.wer import word_error_rate
from tests.fixtures_whisper import transcribe

pytestmark = pytest.mark.integration

TEXT = "The children built a sandcastle on the beach."
MAX_WER = 0.3  # as tests/integration/test_transcribe_route.py: tiny.en on espeak's voice
# name -> ffmpeg output options; video files get a small test pattern as their picture.
AUDIO_FORMATS = {
    "clip.mp3": ["-c:a", "libmp3lame", "-b:a", "64k"],
    "clip.m4a": ["-c:a", "aac", "-b:a", "64k"],
    "clip.webm": ["-c:a", "libopus", "-b:a", "32k"],
}
VIDEO_FORMATS = {
    "clip.mp4": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"],
    "clip.mov": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac"],
    "clip.mkv": ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "libopus"],
}
PICTURE = ["-f", "lavfi", "-i", "testsrc=size=160x120:rate=10"]


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True, timeout=120)


@pytest.fixture(scope="module")
def media(espeak_clips, tmp_path_factory) -> tuple[object, dict[str, bytes]]:
    if shutil.which("ffmpeg") is None:
        pytest.skip("the ffmpeg tool is not installed (bootstrap.sh installs it)")
    clip = espeak_clips.get(TEXT)
    folder = tmp_path_factory.mktemp("media")
    wav = folder / "clip.wav"
    wav.write_bytes(clip.wav)
    for name, options in AUDIO_FORMATS.items():
        _ffmpeg("-i", str(wav), *options, str(folder / name))
    for name, options in VIDEO_FORMATS.items():
        _ffmpeg(*PICTURE, "-i", str(wav), "-shortest", *options, str(folder / name))
    _ffmpeg(*PICTURE, "-t", "2", "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(folder / "silent.mp4"))
    files = {path.name: path.read_bytes() for path in folder.iterdir()}
    return clip, files


def test_every_container_transcribes_like_the_wav(transcribe_client, media):
    clip, files = media
    names = ["clip.wav", *AUDIO_FORMATS, *VIDEO_FORMATS]
    results = dict(zip(names, transcribe(transcribe_client, [files[name] for name in names]), strict=True))
    for name, result in results.items():
        assert "error" not in result, f"{name}: {result}"
        text = " ".join(segment["text"] for segment in result["segments"])
        assert word_error_rate(clip.text, text).wer <= MAX_WER, f"{name}: {text!r}"
        # Codec priming and padding add a few tens of milliseconds at most.
        assert result["duration_s"] == pytest.approx(clip.duration_s, abs=0.1), name


def test_corrupt_and_audioless_files_get_their_own_errors(transcribe_client, media):
    clip, files = media
    mp4 = files["clip.mp4"]
    corrupt = mp4[:64] + bytes(len(mp4) // 2)  # a real MP4 header, then zeros
    results = transcribe(transcribe_client, [corrupt, files["silent.mp4"], files["clip.mp3"], b"\x00" * 1000])
    assert "clip 0: an MP4/MOV/M4A file (ISO base media) that is corrupt" in results[0]["error"]
    assert "clip 1" in results[1]["error"] and "no audio track" in results[1]["error"]
    assert "h264" in results[1]["error"]  # what FFmpeg found is named
    assert "error" not in results[2] and results[2]["segments"]
    assert "clip 3: not a known media container (starts with 00 00" in results[3]["error"]
    assert "MP3, M4A/AAC, Opus/WebM" in results[3]["error"]  # says what is accepted
    (again,) = transcribe(transcribe_client, [files["clip.m4a"]])
    assert word_error_rate(clip.text, " ".join(s["text"] for s in again["segments"])).wer <= MAX_WER
