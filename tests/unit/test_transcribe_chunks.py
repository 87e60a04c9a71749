"""Batched mode's segments from one decoded chunk (windows.chunk_segments)."""

from __future__ import annotations

import pytest

from marquee.routes.transcribe.windows import chunk_segments

TS = 50_000  # timestamp_begin of this made-up vocabulary: token TS + k is k * 20 ms


def ts(seconds: float) -> int:
    return TS + round(seconds / 0.02)


def test_every_closed_segment_is_kept_with_the_chunk_offset():
    tokens = [ts(0.0), 1, 2, ts(2.0), ts(2.5), 3, ts(4.0)]
    segments = chunk_segments(tokens, offset_s=100.0, duration_s=10.0, timestamp_begin=TS)
    assert [(s.start, s.end) for s in segments] == [(100.0, 102.0), (102.5, 104.0)]
    assert segments[1].tokens == (ts(2.5), 3, ts(4.0))


def test_an_unfinished_last_segment_ends_at_the_chunk_end():
    tokens = [ts(0.0), 1, ts(3.0), ts(3.0), 2, 3]
    segments = chunk_segments(tokens, offset_s=10.0, duration_s=5.5, timestamp_begin=TS)
    assert [(s.start, s.end) for s in segments] == [(10.0, 13.0), (13.0, 15.5)]


def test_times_never_pass_the_chunk_end():
    tokens = [ts(0.0), 1, ts(29.0)]
    (segment,) = chunk_segments(tokens, offset_s=0.0, duration_s=12.0, timestamp_begin=TS)
    assert segment.end == pytest.approx(12.0)


def test_a_trailing_lone_opening_timestamp_adds_nothing():
    segments = chunk_segments([ts(0.0), 1, ts(1.0), ts(1.0)], 0.0, 5.0, TS)
    assert len(segments) == 1
