"""analyze_video's frame pipeline: probe, decoder choice, sampling, and every bad input."""

from __future__ import annotations

import numpy as np
import pytest

from marquee.routes.analyze_video import frames
from marquee.routes.analyze_video.frames import Sampling, VideoLimits, VideoRejected
from tests.fixtures_video import BAD_INPUTS, clip_path

LIMITS = VideoLimits()
DEFAULT_SAMPLING = Sampling()


def _decode(data: bytes, sampling: Sampling = DEFAULT_SAMPLING) -> frames.Frames:
    return frames.decode(data, frames.probe(data, LIMITS), sampling, LIMITS)


@pytest.mark.parametrize(("codec", "decoder"), [("h264", "pyav"), ("vp9", "dali-cpu"), ("mjpeg", "dali-cpu")])
def test_each_codec_decodes_every_frame_with_its_decoder(video_test_set, codec, decoder):
    path = clip_path(video_test_set, codec)
    truth = next(t for p, t in video_test_set if p == path)
    decoded = _decode(path.read_bytes())
    assert decoded.decoder == decoder
    assert decoded.boundary.shape == (truth.frames, 27, 48, 3)
    # 2 candidates per second at 25 fps: frames 0, 13 (0.52 s), 25, 38, ...
    assert [i for i, _ in decoded.samples[:4]] == [0, 13, 25, 38]
    assert len(decoded.samples) == int(np.ceil(truth.frames / 12.5))


def test_dali_and_pyav_decode_the_same_vp9_frames(video_test_set):
    data = clip_path(video_test_set, "vp9").read_bytes()
    info = frames.probe(data, LIMITS)
    proxy = Sampling().proxy_size(info.width, info.height)
    by_decoder = {}
    for name, run in (("pyav", frames._decode_pyav), ("dali", lambda d, p, s: frames._decode_dali(d, p, s, "cpu"))):
        sampler = frames.FrameSampler(info.fps, Sampling(), 10_000)
        run(data, proxy, sampler)
        by_decoder[name] = sampler.result(name).boundary.astype(np.int16)
    assert by_decoder["pyav"].shape == by_decoder["dali"].shape
    assert np.abs(by_decoder["pyav"] - by_decoder["dali"]).max() <= 2


def test_proxy_keeps_aspect_and_never_upscales():
    assert Sampling(proxy_height=360).proxy_size(1920, 1080) == (640, 360)
    assert Sampling(proxy_height=360).proxy_size(192, 108) == (192, 108)
    assert Sampling(proxy_height=240).proxy_size(1080, 1920) == (136, 240)


def test_proxy_resolution_is_applied_in_the_decoder(video_test_set):
    decoded = _decode(clip_path(video_test_set, "h264").read_bytes(), Sampling(proxy_height=54, sample_fps=1.0))
    assert decoded.samples[0][1].shape == (54, 96, 3)
    assert [i for i, _ in decoded.samples[:3]] == [0, 25, 50]


def test_decoder_choice_follows_the_codec_and_device():
    assert frames.choose_decoder("h264", "cpu") == "pyav"
    assert frames.choose_decoder("vp9", "cpu") == "dali-cpu"
    assert frames.choose_decoder("mjpeg", "cpu") == "dali-cpu"
    assert frames.choose_decoder("h264", "gpu") == "dali-mixed"  # NVDEC; never run here
    assert frames.choose_decoder("mpeg2video", "gpu") == "pyav"  # NVDEC through DALI does not take it


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_is_refused_with_a_message_that_says_why(bad_videos, name):
    data, phrase = bad_videos[name]
    with pytest.raises(VideoRejected, match=phrase):
        _decode(data)


def test_limits_name_the_parameter_to_raise(bad_videos):
    with pytest.raises(VideoRejected, match=r"max_duration_s"):
        _decode(bad_videos["too_long"][0])
    with pytest.raises(VideoRejected, match=r"at most 33,177,599 pixels per frame \(max_video_pixels\)"):
        frames.probe(bad_videos["huge_resolution"][0], VideoLimits(max_pixels=7680 * 4320 - 1))
    assert frames.probe(bad_videos["huge_resolution"][0], VideoLimits(max_pixels=7680 * 4320)).width == 7680
