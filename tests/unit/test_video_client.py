"""The video client's reading of the route's JSON (no server): the contract and its errors."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from clients.transcription import Transcript
from clients.video import VideoAnalysis, VideoAnalysisError
from marquee.errors import InferenceError

RESULT = {
    "video": {
        "container": "mov,mp4",
        "codec": "h264",
        "width": 192,
        "height": 108,
        "fps": 25.0,
        "duration_s": 4.0,
        "decoder": "pyav",
        "frames": 100,
    },  # fmt: skip
    "transitions": [{"kind": "cut", "start_frame": 50, "end_frame": 50, "time_s": 2.0, "probability": 0.99}],
    "shots": [
        {
            "index": 0,
            "start_frame": 0,
            "end_frame": 49,
            "start_s": 0.0,
            "end_s": 2.0,
            "start_timecode": "00:00:00:00",
            "transition_in": "start",
            "near_duplicate_of": None,
            "keyframe": {
                "frame": 13,
                "time_s": 0.52,
                "timecode": "00:00:00:13",
                "sharpness": 0.9,
                "exposure": 0.8,
                "quality": 0.86,
                "moderation": "allow",
                "labels": {},
                "text": [],
                "tags": [{"label": "envelope", "probability": 0.4}],
                "embedding": [1.0] + [0.0] * 1279,
                "jpeg_base64": base64.b64encode(b"jpeg").decode(),
            },
        },
        {
            "index": 1,
            "start_frame": 50,
            "end_frame": 99,
            "start_s": 2.0,
            "end_s": 4.0,
            "start_timecode": "00:00:02:00",
            "transition_in": "cut",
            "near_duplicate_of": 0,
            "keyframe": None,
        },
    ],  # fmt: skip
    "thumbnails": [{"shot": 0, "frame": 13, "time_s": 0.52, "score": 0.86}],
    "thumbnails_unjudged": None,
    "untagged": None,
}


def test_a_result_becomes_typed_shots_keyframes_and_thumbnails():
    analysis = VideoAnalysis.from_wire("analyze_video", "a.mp4", json.dumps(RESULT).encode())
    first, second = analysis.shots
    assert first.keyframe.tags == (("envelope", 0.4),) and first.keyframe.jpeg == b"jpeg"
    assert first.keyframe.embedding.shape == (1280,) and first.keyframe.embedding.dtype == np.float32
    assert second.keyframe is None and second.near_duplicate_of == 0
    assert analysis.transitions[0].kind == "cut" and analysis.thumbnails[0].shot == 0
    assert analysis.duration_s == 4.0 and analysis.raise_for_error() is analysis


def test_a_file_error_is_kept_and_raised_on_request():
    analysis = VideoAnalysis.from_wire("analyze_video", "b.mp4", '{"error": "video[0]: empty", "error_kind": "input"}')
    assert analysis.error_kind == "input" and analysis.shots == ()
    with pytest.raises(VideoAnalysisError, match="b.mp4: video\\[0\\]: empty"):
        analysis.raise_for_error()


@pytest.mark.parametrize("payload", [b"not json", b"[1, 2]", json.dumps({"shots": []}).encode()])
def test_a_broken_contract_is_an_inference_error(payload):
    with pytest.raises(InferenceError, match="analyze_video: result for c.mp4"):
        VideoAnalysis.from_wire("analyze_video", "c.mp4", payload)


def test_transcripts_share_the_json_reading():
    with pytest.raises(InferenceError, match="transcribe: result for d.wav is list"):
        Transcript.from_wire("transcribe", "d.wav", b"[]")
    assert Transcript.from_wire("transcribe", "d.wav", b'{"error": "empty"}').error == "empty"
