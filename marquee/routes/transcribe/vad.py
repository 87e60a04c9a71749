"""Speech probabilities (Silero VAD) -> chunks of at most 30 s cut at silence (numpy only).

The `silero_vad` model scores frames of 512 samples (32 ms at 16 kHz). Each frame is fed
with the 64 samples before it as context, and the LSTM state runs through the clip, so
the route scores a clip in blocks of `BLOCK_FRAMES` frames, carrying the state from one
block to the next.

From the scores, in order:
1. speech regions by hysteresis: a region opens at a frame scoring >= `threshold` and
   closes once frames score below `threshold - 0.15` for `min_silence_s`;
2. regions are padded by `pad_s` on both sides (overlaps merge);
3. a region longer than `max_chunk_s` is cut at its quietest frame (lowest score) in the
   second half of its first `max_chunk_s`, repeatedly;
4. consecutive regions are packed into chunks while a chunk spans at most
   `max_chunk_s`: a chunk is one contiguous stretch of the clip (silences between its
   regions included), so Whisper's timestamps inside it map to the clip by one offset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16_000
FRAME = 512  # samples scored per step
CONTEXT = 64  # samples of the previous frame prepended to each frame
STATE_SHAPE = (1, 1, 128)
BLOCK_FRAMES = 4096  # frames per model call (131 s): bounds the request to ~9 MB


@dataclass(frozen=True)
class VadSettings:
    threshold: float = 0.5
    min_silence_s: float = 0.16  # faster-whisper's batched pipeline uses 160 ms
    pad_s: float = 0.4
    max_chunk_s: float = 30.0


@dataclass(frozen=True)
class Chunk:
    start: int  # first sample
    stop: int  # one past the last sample
    tail: bool = False  # the rest of a chunk whose decoding stopped early (see after())

    def after(self, seconds: float) -> Chunk:
        """The part of this chunk from `seconds` into it to its end, as a tail."""
        return Chunk(min(self.stop, self.start + round(seconds * SAMPLE_RATE)), self.stop, tail=True)

    @property
    def start_s(self) -> float:
        return self.start / SAMPLE_RATE

    @property
    def duration_s(self) -> float:
        return (self.stop - self.start) / SAMPLE_RATE


def frame_count(num_samples: int) -> int:
    return -(-num_samples // FRAME)


def model_input(samples: np.ndarray, first_frame: int, count: int) -> np.ndarray:
    """[count, 576]: frames first_frame .. first_frame + count - 1, each after its context.

    The clip is zero-padded to whole frames; the first frame's context is zeros."""
    start = first_frame * FRAME - CONTEXT
    stop = (first_frame + count) * FRAME
    excerpt = np.zeros(stop - start, np.float32)
    begin, end = max(start, 0), min(stop, samples.size)
    if end > begin:
        excerpt[begin - start : end - start] = samples[begin:end]
    windows = np.lib.stride_tricks.sliding_window_view(excerpt, FRAME + CONTEXT)[::FRAME]
    return np.ascontiguousarray(windows[:count])


def speech_regions(probs: np.ndarray, settings: VadSettings) -> list[tuple[int, int]]:
    """[(first frame, end frame)) of speech, by hysteresis."""
    low = settings.threshold - 0.15
    min_silence = max(1, round(settings.min_silence_s * SAMPLE_RATE / FRAME))
    regions, start, silent_since = [], None, None
    for index, p in enumerate(probs):
        if start is None:
            if p >= settings.threshold:
                start, silent_since = index, None
            continue
        if p >= settings.threshold or (p >= low and silent_since is None):
            silent_since = None
        elif silent_since is None:
            silent_since = index
        if silent_since is not None and index - silent_since + 1 >= min_silence:
            regions.append((start, silent_since))
            start, silent_since = None, None
    if start is not None:
        regions.append((start, len(probs) if silent_since is None else silent_since))
    return regions


def _padded(regions, pad: int, total: int) -> list[list[int]]:
    merged: list[list[int]] = []
    for first, end in regions:
        first, end = max(0, first - pad), min(total, end + pad)
        if merged and first <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([first, end])
    return merged


def _split_long(first: int, end: int, probs: np.ndarray, longest: int) -> list[tuple[int, int]]:
    pieces = []
    while end - first > longest:
        search = probs[first + longest // 2 : first + longest]
        cut = first + longest // 2 + int(np.argmin(search)) if search.size else first + longest
        pieces.append((first, cut))
        first = cut
    pieces.append((first, end))
    return pieces


def chunks_from_probs(probs: np.ndarray, num_samples: int, settings: VadSettings = VadSettings()) -> list[Chunk]:
    """Chunks of at most `max_chunk_s` covering every speech region, in order."""
    total = len(probs)
    longest = int(settings.max_chunk_s * SAMPLE_RATE) // FRAME
    pad = round(settings.pad_s * SAMPLE_RATE / FRAME)
    pieces = []
    for first, end in _padded(speech_regions(probs, settings), pad, total):
        pieces += _split_long(first, end, probs, longest)
    chunks: list[list[int]] = []
    for first, end in pieces:
        if chunks and end - chunks[-1][0] <= longest:
            chunks[-1][1] = end
        else:
            chunks.append([first, end])
    return [Chunk(first * FRAME, min(end * FRAME, num_samples)) for first, end in chunks if first * FRAME < num_samples]
