"""Session fixtures for video (a pytest plugin registered in tests/conftest.py).

`video_test_set`: the standard clips with planted cuts and dissolves (perf/video_clips.py),
every plan in H.264/MP4, VP9/WebM and MJPEG/AVI, with their ground truth.
`bad_videos`: one file per kind of bad input, with the words its error must contain.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from perf.video_clips import FFMPEG, make_test_set


def _ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-v", "error", "-y", *args], check=True, capture_output=True)


@pytest.fixture(scope="session")
def video_test_set(tmp_path_factory) -> list:
    return make_test_set(tmp_path_factory.mktemp("video-clips"))


@pytest.fixture(scope="session")
def bad_videos(tmp_path_factory, video_test_set) -> dict[str, tuple[bytes, str]]:
    """name -> (file bytes, a phrase its error message must contain)."""
    folder = tmp_path_factory.mktemp("bad-videos")
    mp4 = next(path for path, truth in video_test_set if truth.codec == "h264").read_bytes()
    webm = next(path for path, truth in video_test_set if truth.codec == "vp9").read_bytes()
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "aac", str(folder / "audio.m4a"))
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x36:rate=10:duration=1", "-c:v", "ffv1", str(folder / "ffv1.mkv"))
    # 8K, one black frame: the header alone must be enough to refuse it.
    _ffmpeg("-f", "lavfi", "-i", "color=black:size=7680x4320:rate=1:duration=1", "-c:v", "libx264", "-preset",
            "ultrafast", "-pix_fmt", "yuv420p", str(folder / "8k.mp4"))  # fmt: skip
    # 40 minutes at 1 fps of a tiny frame: small and fast, yet over the 30-minute limit.
    _ffmpeg("-f", "lavfi", "-i", "color=gray:size=64x36:rate=1:duration=2400", "-c:v", "libx264", "-preset",
            "ultrafast", "-pix_fmt", "yuv420p", str(folder / "long.mp4"))  # fmt: skip
    return {
        "empty": (b"", "empty"),
        "not_a_video": (b"this is a text file, not a video\n" * 50, "not a readable video container"),
        "truncated_mp4": (mp4[: len(mp4) // 2], "corrupt or truncated"),
        "truncated_webm": (webm[: len(webm) // 2], "truncated"),
        "audio_only": ((folder / "audio.m4a").read_bytes(), "audio only"),
        "unsupported_codec": ((folder / "ffv1.mkv").read_bytes(), "codec 'ffv1' is not supported"),
        "huge_resolution": ((folder / "8k.mp4").read_bytes(), "resolution 7680x4320"),
        "too_long": ((folder / "long.mp4").read_bytes(), "too long"),
    }


def clip_path(test_set: list, codec: str, index: int = 0) -> Path:
    return [path for path, truth in test_set if truth.codec == codec][index]
