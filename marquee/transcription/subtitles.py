"""SRT and WebVTT writers, and a strict parser/validator for both (used by tests and by
`marquee transcribe` to check what it wrote).

Writers take anything with `start`, `end` (seconds) and `text` (e.g. clients'
`Segment`). What they guarantee, whatever the segments look like:
- cues are numbered from 1 (SRT) and in time order; a segment starting before the
  previous cue ended is moved to start at that end (Whisper's windows can overlap by
  a few hundredths after stitching);
- every cue lasts at least MIN_CUE_S; segments with no text are left out;
- text has no blank lines (a blank line ends a cue in both formats) and, in WebVTT,
  `&`, `<` and `-->` are escaped.
Timestamps are rounded to milliseconds: SRT `HH:MM:SS,mmm`, WebVTT `HH:MM:SS.mmm`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

MIN_CUE_S = 0.001


class TimedText(Protocol):
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Cue:
    index: int  # 1-based position in the file
    start: float
    end: float
    text: str


class SubtitleFormatError(ValueError):
    """A subtitle file breaks its format; the message names the line."""


def cues_from_segments(segments: Iterable[TimedText]) -> list[Cue]:
    cues: list[Cue] = []
    previous_end = 0.0
    for segment in sorted(segments, key=lambda s: (s.start, s.end)):
        text = "\n".join(line.strip() for line in str(segment.text).strip().splitlines() if line.strip())
        if not text:
            continue
        start = max(round(float(segment.start), 3), previous_end, 0.0)
        end = max(round(float(segment.end), 3), round(start + MIN_CUE_S, 3))
        cues.append(Cue(len(cues) + 1, start, end, text))
        previous_end = end
    return cues


def format_timestamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def to_srt(segments: Iterable[TimedText]) -> str:
    blocks = [
        f"{cue.index}\n{format_timestamp(cue.start, ',')} --> {format_timestamp(cue.end, ',')}\n{cue.text}\n"
        for cue in cues_from_segments(segments)
    ]
    return "\n".join(blocks)


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace("-->", "--&gt;")


def to_vtt(segments: Iterable[TimedText], language: str | None = None) -> str:
    """WebVTT; with `language`, a `Language:` header line (the metadata header players
    such as YouTube's read), and a segment whose own `language` attribute differs is
    wrapped in a WebVTT language span, `<lang xx>...</lang>`. SRT has no place for either."""
    segments = list(segments)
    ordered = sorted(segments, key=lambda s: (s.start, s.end))
    # cues_from_segments keeps exactly the segments with text, in this order.
    own_languages = [getattr(s, "language", None) for s in ordered if str(s.text).strip()]
    blocks = []
    for cue, own in zip(cues_from_segments(segments), own_languages, strict=True):
        text = _vtt_escape(cue.text)
        if language and own and own != language:
            text = f"<lang {own}>{text}</lang>"
        blocks.append(f"{format_timestamp(cue.start, '.')} --> {format_timestamp(cue.end, '.')}\n{text}\n")
    header = f"WEBVTT\nLanguage: {language}\n" if language else "WEBVTT\n"
    return "\n".join([header, *blocks])


# -- parsing and validation -----------------------------------------------------

_SRT_TIME = r"(\d{2,}):([0-5]\d):([0-5]\d),(\d{3})"
_VTT_TIME = r"(?:(\d{2,}):)?([0-5]\d):([0-5]\d)\.(\d{3})"
_SRT_TIMING = re.compile(rf"^{_SRT_TIME} --> {_SRT_TIME}$")
_VTT_TIMING = re.compile(rf"^{_VTT_TIME} --> {_VTT_TIME}(?: .*)?$")


def _seconds(hours: str | None, minutes: str, secs: str, millis: str) -> float:
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(secs) + int(millis) / 1000


def _blocks(text: str) -> list[tuple[int, list[str]]]:
    """(first line number, lines) of each blank-line separated block."""
    blocks, current, first = [], [], 0
    for number, line in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        if line.strip():
            if not current:
                first = number
            current.append(line)
        elif current:
            blocks.append((first, current))
            current = []
    if current:
        blocks.append((first, current))
    return blocks


def parse_srt(text: str) -> list[Cue]:
    cues = []
    for line_number, lines in _blocks(text):
        if len(lines) < 3:
            raise SubtitleFormatError(f"SRT line {line_number}: a cue needs a number, a timing line and text")
        if not lines[0].strip().isdigit() or int(lines[0]) != len(cues) + 1:
            raise SubtitleFormatError(f"SRT line {line_number}: cue number {lines[0]!r}; expected {len(cues) + 1}")
        timing = _SRT_TIMING.match(lines[1].strip())
        if not timing:
            raise SubtitleFormatError(
                f"SRT line {line_number + 1}: timing {lines[1]!r}; expected 'HH:MM:SS,mmm --> HH:MM:SS,mmm'"
            )
        parts = timing.groups()
        cues.append(Cue(len(cues) + 1, _seconds(*parts[:4]), _seconds(*parts[4:]), "\n".join(lines[2:])))
    _check_times(cues, "SRT")
    return cues


def parse_vtt(text: str) -> list[Cue]:
    blocks = _blocks(text.lstrip("\ufeff"))
    if not blocks or not re.match(r"^WEBVTT(?:[ \t].*)?$", blocks[0][1][0]):
        raise SubtitleFormatError("WebVTT line 1: the file must start with 'WEBVTT'")
    cues = []
    for line_number, lines in blocks[1:]:
        if lines[0].startswith(("NOTE", "STYLE", "REGION")):
            continue
        if "-->" not in lines[0]:  # an optional cue identifier
            line_number, lines = line_number + 1, lines[1:]
        timing = _VTT_TIMING.match(lines[0].strip()) if lines else None
        if not timing:
            raise SubtitleFormatError(
                f"WebVTT line {line_number}: timing {lines[0] if lines else ''!r}; "
                "expected 'HH:MM:SS.mmm --> HH:MM:SS.mmm'"
            )
        if len(lines) < 2:
            raise SubtitleFormatError(f"WebVTT line {line_number}: cue has no text")
        parts = timing.groups()
        text_lines = lines[1:]
        if any("-->" in line for line in text_lines):
            raise SubtitleFormatError(f"WebVTT line {line_number + 1}: cue text contains '-->'")
        cues.append(Cue(len(cues) + 1, _seconds(*parts[:4]), _seconds(*parts[4:]), "\n".join(text_lines)))
    _check_times(cues, "WebVTT")
    return cues


def _check_times(cues: list[Cue], kind: str) -> None:
    previous_end = 0.0
    for cue in cues:
        if cue.end <= cue.start:
            raise SubtitleFormatError(
                f"{kind} cue {cue.index}: ends at {cue.end:.3f}s, not after its start {cue.start:.3f}s"
            )
        if cue.start < previous_end:
            raise SubtitleFormatError(
                f"{kind} cue {cue.index}: starts at {cue.start:.3f}s, "
                f"before the previous cue ends ({previous_end:.3f}s)"
            )
        previous_end = cue.end


def coverage_problems(cues: list[Cue], duration_s: float, max_gap_s: float = 5.0) -> list[str]:
    """How far the cues fall short of covering a clip of `duration_s`: gaps longer than
    `max_gap_s` at the start, between cues or at the end, and cues past the end."""
    problems = []
    if not cues:
        return [f"no cues for a clip of {duration_s:.1f}s"]
    if cues[0].start > max_gap_s:
        problems.append(f"first cue starts at {cues[0].start:.2f}s (> {max_gap_s}s)")
    for before, after in zip(cues, cues[1:], strict=False):
        if after.start - before.end > max_gap_s:
            problems.append(f"gap of {after.start - before.end:.2f}s between cues {before.index} and {after.index}")
    if duration_s - cues[-1].end > max_gap_s:
        problems.append(f"last cue ends at {cues[-1].end:.2f}s, clip lasts {duration_s:.2f}s")
    if cues[-1].end > duration_s + 0.5:
        problems.append(f"last cue ends at {cues[-1].end:.2f}s, after the clip's end ({duration_s:.2f}s)")
    return problems
