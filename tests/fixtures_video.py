"""Session fixtures for video (a pytest plugin registered in tests/conftest.py).

`video_test_set`: the standard clips with planted cuts and dissolves (perf/video_clips.py),
every plan in H.264/MP4, VP9/WebM and MJPEG/AVI, with their ground truth.
`bad_videos`: one file per kind of bad input, with the words its error must contain.
`safety_clip`: a clip whose sharpest keyframe is unsafe (see SAFETY_PLAN).
`face_clip`: a photograph with a face, and the same photograph upside down (no face
found, the same sharpness and exposure), in shots of their own (see `face_clip`).
`video_repository` / `video_triton`: the vision export and the image route behind a real
tritonserver.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from marquee import render
from marquee.server.process import log_tail
from marquee.specs.moderation_image import MODERATE_IMAGE
from marquee.specs.vision import ANALYZE_VIDEO, VISION_MODELS
from perf.video_clips import FFMPEG, ClipPlan, Join, Shot, encode, make_clip, make_test_set, shot_frames


def _ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-v", "error", "-y", *args], check=True, capture_output=True)


@pytest.fixture(scope="session")
def video_test_set(tmp_path_factory) -> list:
    return make_test_set(tmp_path_factory.mktemp("video-clips"))


# Every kind of bad input the route must refuse with its own error (keys of `bad_videos`).
BAD_INPUTS = (
    "empty",
    "not_a_video",
    "truncated_mp4",
    "truncated_webm",
    "audio_only",
    "unsupported_codec",
    "huge_resolution",
    "too_long",
)


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


# A clip whose sharpest keyframe is a title card the policy blocks (the text route's
# stand-in blocks "crypto"): the thumbnail choice must skip it for the safe shots. Its
# last shot repeats the third (the same panned still): a near-duplicate. (ffmpeg's
# `gradients` source does not repeat itself across runs, so it cannot be the repeat.)
SAFETY_PLAN = ClipPlan(
    "safety",
    (
        Shot("gradients=speed=0.01", 40),
        Shot("caption:BUY CRYPTO NOW", 40),
        Shot("still:5", 40),
        Shot("smptehdbars", 40),
        Shot("still:5", 40),
    ),
    (Join("cut"), Join("cut"), Join("cut"), Join("cut")),
    width=640,
    height=360,
)
JUDGED_VIDEO_ROUTE = "analyze_video_judged"
NO_OCR_VIDEO_ROUTE = "analyze_video_no_ocr"  # keyframes judged without OCR: faster, for boundary tests


@pytest.fixture(scope="session")
def safety_clip(tmp_path_factory) -> Path:
    path, _ = make_clip(SAFETY_PLAN, "h264", tmp_path_factory.mktemp("safety-clip"))
    return path


FACE_SHOT_FRAMES = 40
FACE_CLIP_SIZE = (640, 360)


def face_clip_frames() -> dict[str, np.ndarray]:
    """The face clip's pictures: the astronaut photograph centred on a grey 640x360 frame,
    upright and turned 180 degrees. Turning keeps the Laplacian's variance and the
    brightness, so both score the same on sharpness and exposure; MTCNN finds no face in
    the upside-down one."""
    import cv2

    from tests.facenet_reference import photographs

    width, height = FACE_CLIP_SIZE
    photo = cv2.resize(photographs()["astronaut"], (height, height), interpolation=cv2.INTER_AREA)
    frame = np.full((height, width, 3), 128, np.uint8)
    left = (width - height) // 2
    frame[:, left : left + height] = photo
    return {"upright": frame, "upside_down": np.ascontiguousarray(frame[::-1, ::-1])}


@pytest.fixture(scope="session")
def face_clip(tmp_path_factory) -> Path:
    """Shots: the upside-down photograph, colour bars, the upright photograph (hard cuts,
    40 frames each, H.264). The bars keep the two photographs apart, so each has a shot."""
    pictures = face_clip_frames()
    plan = ClipPlan(
        "faces", (Shot("smptehdbars", FACE_SHOT_FRAMES),), (), width=FACE_CLIP_SIZE[0], height=FACE_CLIP_SIZE[1]
    )
    bars = shot_frames(plan.shots[0], plan)
    still = {name: np.repeat(picture[None], FACE_SHOT_FRAMES, axis=0) for name, picture in pictures.items()}
    frames = np.concatenate([still["upside_down"], bars, still["upright"]])
    return encode(frames, plan.fps, "h264", tmp_path_factory.mktemp("face-clip") / "faces.mp4")


@pytest.fixture(scope="session")
def video_repository(tmp_path_factory, cache_root) -> Path:
    """TransNetV2 and analyze_video exported, with the image route (and its text stand-in);
    `analyze_video_judged` sends keyframes to the image route judged by the stand-in."""
    from export.vision.pipeline import export_vision
    from tests.fixtures_moderation_image import JUDGED_ROUTE, NO_OCR_ROUTE, install_image_moderation

    repository = tmp_path_factory.mktemp("video_repository")
    install_image_moderation(repository)
    render.write(list(VISION_MODELS), repository)
    export_vision(repository)
    render.write_variant(repository, ANALYZE_VIDEO, JUDGED_VIDEO_ROUTE, image_route=JUDGED_ROUTE.name)
    render.write_variant(repository, MODERATE_IMAGE, NO_OCR_ROUTE.name, **NO_OCR_ROUTE.parameters)
    render.write_variant(repository, ANALYZE_VIDEO, NO_OCR_VIDEO_ROUTE, image_route=NO_OCR_ROUTE.name)
    return repository


@pytest.fixture(scope="session")
def video_triton(video_repository, tmp_path_factory):
    from marquee.server import TritonServer, free_ports

    log_path = tmp_path_factory.mktemp("video-triton-log") / "tritonserver.log"
    server = TritonServer(video_repository, free_ports(), log_path=log_path).start(timeout=300)
    yield server
    server.stop()


@pytest.fixture
def video_server_alive(video_triton):
    """Fails the test, with the server's log, if the server died during it."""
    yield video_triton
    if not video_triton.alive():
        pytest.fail(f"tritonserver died during the test; log:\n{log_tail(video_triton.log_path)}")
