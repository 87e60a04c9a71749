"""Long audio as 30-second windows, and openai-whisper's seek-by-last-timestamp rule (numpy only).

Each window decodes into tokens with timestamps. The window's segments are the spans
between consecutive timestamp pairs. If the tokens end with a lone timestamp (the model
says "no more speech after this"), the next window starts at the end of this one;
otherwise the last segment is unfinished, so it is dropped and the next window starts
at the last complete timestamp, where that speech will be decoded whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16_000
HOP_LENGTH = 160  # samples per mel frame (10 ms)
N_FRAMES = 3000  # mel frames per window (30 s)
INPUT_STRIDE = 2  # mel frames per timestamp step (3000 frames -> 1500 encoder positions)
TIME_PER_FRAME = HOP_LENGTH / SAMPLE_RATE
TIME_PRECISION = INPUT_STRIDE * TIME_PER_FRAME  # 0.02 s per timestamp token
# Undecoded seconds after a chunk's last closed segment that make the route decode them
# again (stopped_early_at): more than a VAD chunk's trailing silence and padding.
TAIL_MIN_S = 1.5


# Normalised log-mel is (log10(power) + 4) / 4, floored at the clip's maximum minus 8
# (80 dB): values span [clip_max - 2, clip_max]. Digital silence is log10(1e-10) = -10.
DIGITAL_SILENCE = (-8.0 + 4.0) / 4.0  # power <= 1e-8 in every bin: no signal at all
QUIET_BELOW_CLIP_MAX = 1.75  # 70 dB below the clip's loudest bin: nothing audible


@dataclass(frozen=True)
class RawSegment:
    start: float  # seconds from the start of the clip
    end: float
    tokens: tuple[int, ...]  # text tokens framed by their timestamp tokens


def content_frames(num_samples: int, mel_frames: int) -> int:
    """Frames that hold audio: one per hop of real samples (the trailing STFT frame that
    only sees padding is not content)."""
    return max(0, min(num_samples // HOP_LENGTH, mel_frames))


def window_features(mel: np.ndarray, seek: int, frames: int) -> tuple[np.ndarray, int]:
    """The window starting at frame `seek`, zero-padded to 3000 frames, and its content size.

    Zero padding in normalised log-mel space, as openai-whisper and faster-whisper do.
    """
    size = min(N_FRAMES, frames - seek)
    window = np.zeros((mel.shape[0], N_FRAMES), np.float32)
    window[:, :size] = mel[:, seek : seek + size]
    return window, size


def silent_window(window: np.ndarray, size: int, clip_max: float) -> bool:
    """True when the window holds no audible signal, so it is skipped without decoding.

    A deliberate addition to openai-whisper's rules: on long stretches of digital
    silence Whisper (and faster-whisper, same weights) confidently "hears" a short word
    ("you"), which its no-speech check lets through. Windows whose loudest bin is digital
    silence, or 70 dB below the clip's loudest bin, cannot hold speech.
    """
    if size <= 0:
        return True
    loudest = float(window[:, :size].max())
    return loudest <= DIGITAL_SILENCE or loudest <= clip_max - QUIET_BELOW_CLIP_MAX


def split_window(tokens: list[int], seek: int, segment_size: int, timestamp_begin: int) -> tuple[list[RawSegment], int]:
    """(segments with absolute times, next seek) for one decoded window (tokens without EOT)."""
    offset = seek * TIME_PER_FRAME
    is_timestamp = [t >= timestamp_begin for t in tokens]
    single_timestamp_ending = len(tokens) >= 2 and not is_timestamp[-2] and is_timestamp[-1]
    # Positions where a timestamp follows a timestamp: the boundary between two segments.
    boundaries = [i for i in range(1, len(tokens)) if is_timestamp[i] and is_timestamp[i - 1]]
    if not boundaries:
        duration = segment_size * TIME_PER_FRAME
        timestamps = [t for t in tokens if t >= timestamp_begin]
        if timestamps and timestamps[-1] != timestamp_begin:
            duration = (timestamps[-1] - timestamp_begin) * TIME_PRECISION
        return [RawSegment(offset, offset + duration, tuple(tokens))], seek + segment_size
    if single_timestamp_ending:
        boundaries.append(len(tokens))
    segments = []
    previous = 0
    for boundary in boundaries:
        piece = tokens[previous:boundary]
        start = offset + (piece[0] - timestamp_begin) * TIME_PRECISION
        end = offset + (piece[-1] - timestamp_begin) * TIME_PRECISION
        segments.append(RawSegment(start, end, tuple(piece)))
        previous = boundary
    if single_timestamp_ending:
        return segments, seek + segment_size
    last_timestamp = tokens[previous - 1] - timestamp_begin
    return segments, seek + last_timestamp * INPUT_STRIDE


def chunk_segments(tokens: list[int], offset_s: float, duration_s: float, timestamp_begin: int) -> list[RawSegment]:
    """Batched mode: every segment of one decoded chunk, with absolute times.

    A chunk is decoded once (there is no next window to re-decode an unfinished segment
    from, as the seek rule does), so a last segment without its closing timestamp is
    kept and ends where the chunk ends. Times never pass the chunk's end.
    """
    is_timestamp = [t >= timestamp_begin for t in tokens]
    segments, start = [], None
    for index, token in enumerate(tokens):
        if not is_timestamp[index]:
            continue
        seconds = (token - timestamp_begin) * TIME_PRECISION
        if start is None:
            start, first = seconds, index
        elif index > first + 1:  # text since the opening timestamp: the segment closes
            segments.append(_bounded(offset_s, start, seconds, duration_s, tokens[first : index + 1]))
            start = None
        else:  # two timestamps in a row: the second opens the next segment
            start, first = seconds, index
    if start is not None and first + 1 < len(tokens):
        segments.append(_bounded(offset_s, start, duration_s, duration_s, tokens[first:]))
    if not segments and any(not flag for flag in is_timestamp):
        segments.append(_bounded(offset_s, 0.0, duration_s, duration_s, tokens))
    return segments


def stopped_early_at(tokens: list[int], duration_s: float, timestamp_begin: int, min_left_s: float) -> float | None:
    """Seconds into a decoded chunk where decoding stopped, when at least `min_left_s` of
    the chunk were left undecoded; else None.

    Whisper sometimes ends a window (end-of-text) after a closed segment although speech
    follows, most often a last sentence near the window's end. Sequential mode loses
    nothing to this: its next window starts at that last timestamp (the seek rule). A VAD
    chunk ends within about half a second of its last speech, so more than `min_left_s`
    left after the last closing timestamp is speech the decoder skipped; the route
    decodes that tail once more as a chunk of its own."""
    if len(tokens) < 2 or tokens[-1] < timestamp_begin:  # no segment, or the last one left open
        return None
    stopped = (tokens[-1] - timestamp_begin) * TIME_PRECISION
    return stopped if stopped > 0 and duration_s - stopped >= min_left_s else None


def _bounded(offset_s: float, start: float, end: float, duration_s: float, tokens) -> RawSegment:
    return RawSegment(offset_s + min(start, duration_s), offset_s + min(end, duration_s), tuple(tokens))
