"""Segments -> the route's JSON: text from tokens, empty segments dropped (numpy-free)."""

from __future__ import annotations

import json


def segment_text(tokens, decode, timestamp_begin: int, eot: int) -> str:
    """Text of a segment: its text tokens (below end-of-text) decoded, outer spaces kept
    out so that subtitle writers get clean lines."""
    return decode([t for t in tokens if t < eot]).strip()


def segments_json(raw_segments, decode, timestamp_begin: int, eot: int) -> list[dict]:
    """One dict per segment that has text and nonzero length, as openai-whisper keeps them."""
    out = []
    for segment in raw_segments:
        text = segment_text(segment.tokens, decode, timestamp_begin, eot)
        if not text or segment.end <= segment.start:
            continue
        out.append(
            {
                "start": round(float(segment.start), 3),
                "end": round(float(segment.end), 3),
                "text": text,
                "tokens": [int(t) for t in segment.tokens],
            }
        )
    return out


def clip_result(duration_s: float, segments: list[dict], model: str, model_version: str, **extra) -> str:
    """`extra`: what else the route reports about the clip (the decoding `mode`, ...)."""
    return json.dumps(
        {
            "duration_s": round(float(duration_s), 3),
            "segments": segments,
            "model": model,
            "model_version": model_version,
            **extra,
        }
    )


def clip_error(message: str) -> str:
    return json.dumps({"error": message})
