"""SRT/WebVTT writers and the validator that checks them."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from marquee.transcription.subtitles import (
    SubtitleFormatError,
    coverage_problems,
    format_timestamp,
    parse_srt,
    parse_vtt,
    to_srt,
    to_vtt,
)


@dataclass
class Seg:
    start: float
    end: float
    text: str


SEGMENTS = [
    Seg(0.0, 2.5, " Hello there."),
    Seg(2.5, 5.04, " Cats & dogs <3 arrows --> here."),
    Seg(4.98, 7.2, "Overlaps the previous one\n\nwith a blank line"),  # starts 60 ms early
    Seg(7.2, 7.2, "zero length"),
    Seg(8.0, 9.0, "   "),  # no text: left out
    Seg(3725.5, 3727.123, "after an hour"),
]


def test_timestamps():
    assert format_timestamp(0, ",") == "00:00:00,000"
    assert format_timestamp(3725.1234, ".") == "01:02:05.123"
    assert format_timestamp(59.9996, ",") == "00:01:00,000"
    assert format_timestamp(100 * 3600, ",") == "100:00:00,000"


def test_srt_round_trip_is_ordered_and_valid():
    text = to_srt(SEGMENTS)
    assert text.startswith("1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n2\n")
    cues = parse_srt(text)
    assert [c.index for c in cues] == [1, 2, 3, 4, 5]
    assert cues[2].start == pytest.approx(5.04)  # moved to the previous end
    assert cues[2].text == "Overlaps the previous one\nwith a blank line"
    assert cues[3].end > cues[3].start
    assert cues[-1].start == pytest.approx(3725.5) and cues[-1].end == pytest.approx(3727.123)


def test_vtt_round_trip_escapes_markup():
    text = to_vtt(SEGMENTS)
    assert text.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello there.\n")
    cues = parse_vtt(text)
    assert len(cues) == 5
    assert cues[1].text == "Cats &amp; dogs &lt;3 arrows --&gt; here."
    assert [c.start for c in cues] == [c.start for c in parse_srt(to_srt(SEGMENTS))]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1\n00:00:01,000 --> 00:00:00,500\nbackwards\n", "not after its start"),
        ("1\n00:00:00,000 --> 00:00:02,000\na\n\n2\n00:00:01,000 --> 00:00:03,000\nb\n", "before the previous cue"),
        ("1\n00:00:00.000 --> 00:00:02,000\nwrong separator\n", "line 2: timing"),
        ("2\n00:00:00,000 --> 00:00:02,000\nstarts at two\n", "cue number '2'; expected 1"),
        ("1\n00:00:00,000 --> 00:00:02,000\n", "needs a number, a timing line and text"),
    ],
)
def test_srt_validator_rejects(text, message):
    with pytest.raises(SubtitleFormatError, match=message):
        parse_srt(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("00:00:00.000 --> 00:00:01.000\nno header\n", "must start with 'WEBVTT'"),
        ("WEBVTT\n\n00:00:00,000 --> 00:00:01,000\ncomma\n", "timing"),
        ("WEBVTT\n\n00:00:02.000 --> 00:00:01.000\nbackwards\n", "not after its start"),
        ("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n", "no text"),
    ],
)
def test_vtt_validator_rejects(text, message):
    with pytest.raises(SubtitleFormatError, match=message):
        parse_vtt(text)


def test_vtt_accepts_identifiers_notes_and_short_timestamps():
    cues = parse_vtt("WEBVTT - title\n\nNOTE hi\n\nintro\n00:01.000 --> 00:02.500 align:start\nHi\n")
    assert [(c.start, c.end, c.text) for c in cues] == [(1.0, 2.5, "Hi")]


def test_coverage():
    cues = parse_srt(to_srt([Seg(0.5, 30, "a"), Seg(30, 61, "b")]))
    assert coverage_problems(cues, 62.0) == []
    assert coverage_problems(cues, 80.0) == ["last cue ends at 61.00s, clip lasts 80.00s"]
    gappy = parse_srt(to_srt([Seg(0, 10, "a"), Seg(20, 30, "b")]))
    assert coverage_problems(gappy, 30.0) == ["gap of 10.00s between cues 1 and 2"]
    assert coverage_problems([], 5.0) == ["no cues for a clip of 5.0s"]
