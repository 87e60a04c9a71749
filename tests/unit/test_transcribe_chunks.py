"""Batched mode's segments from one decoded chunk (windows.chunk_segments)."""

from __future__ import annotations

import pytest

from marquee.routes.transcribe.vad import SAMPLE_RATE, Chunk
from marquee.routes.transcribe.windows import chunk_segments, stopped_early_at

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


def test_a_chunk_whose_decoding_stopped_seconds_before_its_end_has_a_tail_to_decode():
    # Closed segments up to 20 s of a 26 s chunk, then end-of-text: 6 s were skipped.
    tokens = [ts(0.0), 1, ts(10.0), ts(10.0), 2, ts(20.0)]
    assert stopped_early_at(tokens, duration_s=26.0, timestamp_begin=TS, min_left_s=1.5) == pytest.approx(20.0)
    tail = Chunk(16_000, 16_000 + 26 * SAMPLE_RATE).after(20.0)
    assert (tail.start_s, tail.duration_s, tail.tail) == (pytest.approx(21.0), pytest.approx(6.0), True)


def test_no_tail_when_decoding_reached_the_end_or_left_a_segment_open():
    closed_near_end = [ts(0.0), 1, ts(25.0)]
    assert stopped_early_at(closed_near_end, 26.0, TS, min_left_s=1.5) is None  # 1 s left: padding
    left_open = [ts(0.0), 1, ts(10.0), ts(10.0), 2, 3]  # kept to the chunk's end (chunk_segments)
    assert stopped_early_at(left_open, 26.0, TS, min_left_s=1.5) is None
    assert stopped_early_at([], 26.0, TS, min_left_s=1.5) is None  # silence: nothing decoded
    assert stopped_early_at([ts(0.0), ts(0.0)], 26.0, TS, min_left_s=1.5) is None  # no progress: no tail
