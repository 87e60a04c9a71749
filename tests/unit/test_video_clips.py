"""The test-clip generator's ground truth, and the shot-boundary scoring."""

from __future__ import annotations

import numpy as np
import pytest

from perf import shot_eval
from perf.video_clips import ClipPlan, Join, Shot, compose, ground_truth, make_clip


def _plan(**kwargs) -> ClipPlan:
    shots = (Shot("still:1", 30), Shot("still:2", 30), Shot("still:3", 30))
    return ClipPlan("t", shots, (Join("cut"), Join("dissolve", 6)), width=64, height=36, **kwargs)


def test_ground_truth_places_cut_and_dissolve_where_the_frames_change():
    truth = ground_truth(_plan(), "h264")
    assert truth.frames == 84  # 90 frames, 6 overlap in the dissolve
    assert truth.transitions == [
        {"kind": "cut", "start": 30, "end": 30},
        {"kind": "dissolve", "start": 54, "end": 59},
    ]
    assert truth.shots == [{"start": 0, "end": 29}, {"start": 30, "end": 53}, {"start": 60, "end": 83}]


def test_composed_frames_jump_at_the_cut_and_blend_through_the_dissolve():
    video = compose(_plan()).astype(np.float32)
    step = np.abs(np.diff(video, axis=0)).mean(axis=(1, 2, 3))  # step[i]: frame i -> i + 1
    assert step[29] > 10 * np.median(step)  # the cut: frame 29 -> 30
    # A dissolve spreads the change over its frames: no single step as large as the cut.
    assert step[53:60].max() < step[29] / 3
    # Its middle frame is a mix: far from the last frame before it and the first after it.
    before, middle, after = video[53], video[56], video[60]
    assert np.abs(middle - before).mean() > 0.3 * np.abs(after - before).mean()
    assert np.abs(middle - after).mean() > 0.3 * np.abs(after - before).mean()


def test_join_and_plan_refuse_inconsistent_transitions():
    with pytest.raises(ValueError, match="dissolve needs frames"):
        Join("dissolve", 0)
    with pytest.raises(ValueError, match="allowed: cut, dissolve"):
        Join("wipe")
    with pytest.raises(ValueError, match="too long"):
        ClipPlan("x", (Shot("still:1", 10), Shot("still:2", 10)), (Join("dissolve", 5),))


def test_score_matches_within_tolerance_and_counts_unmatched_predictions_against_both_kinds():
    planted = [{"kind": "cut", "start": 30, "end": 30}, {"kind": "dissolve", "start": 54, "end": 59}]
    scores = shot_eval.score(planted, [(29, 29), (57, 57), (80, 80)])
    assert (scores["cut"].matched, scores["cut"].false_positives) == (1, 1)
    assert scores["cut"].precision == 0.5 and scores["cut"].recall == 1.0
    assert scores["dissolve"].f1 == pytest.approx(2 / 3)
    missed = shot_eval.score(planted, [(34, 34)])  # 4 frames after the cut: outside the tolerance
    assert missed["cut"].matched == 0 and missed["cut"].false_positives == 1


@pytest.mark.parametrize("codec", ["h264", "vp9", "mjpeg"])
def test_encoded_clip_decodes_to_the_planted_frame_count(tmp_path, codec):
    import av

    path, truth = make_clip(_plan(), codec, tmp_path)
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == truth.frames
    step = np.abs(np.diff(np.stack(frames).astype(np.float32), axis=0)).mean(axis=(1, 2, 3))
    assert int(np.argmax(step)) == 29  # the cut survived encoding at its planted frame
    assert (tmp_path / f"t_{codec}.json").is_file()


def test_ffmpeg_scene_filter_finds_the_planted_cut(tmp_path):
    path, truth = make_clip(_plan(), "h264", tmp_path)
    found = shot_eval.ffmpeg_scene_transitions(path, 0.3, truth.fps)
    assert shot_eval.score(truth.transitions, found)["cut"].recall == 1.0
