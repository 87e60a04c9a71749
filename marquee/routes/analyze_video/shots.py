"""From 48x27 frames to TransNetV2 windows, and from its per-frame probabilities to
transitions and shots.

Windows follow the package's own `predict_frames`: the clip is padded with 25 copies of
its first frame in front and copies of its last frame behind, windows of 100 frames
advance by 50, and each window contributes the predictions of its middle 50 frames.

Transitions: every run of frames whose `single_frame` probability exceeds the boundary
threshold is one transition, at the run's peak p (TransNetV2 marks the last frame before
the change, so the new shot starts at p + 1). Its extent comes from `many_hot`, which
marks every frame inside a transition: the frames around the peak above the transition
threshold. Three or more such frames make it a dissolve (or another gradual transition)
spanning them; fewer make it a hard cut. Shots are what lies between transitions, the
blended frames of a dissolve belonging to neither shot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WINDOW_FRAMES, WINDOW_STEP, WINDOW_CONTEXT = 100, 50, 25
MIN_GRADUAL_FRAMES = 3


@dataclass(frozen=True)
class Transition:
    kind: str  # "cut" | "dissolve"
    start: int  # a cut: the first frame of the new shot; a dissolve: its first blended frame
    end: int  # inclusive; equal to start for a cut
    probability: float

    def as_json(self, fps: float) -> dict:
        return {
            "kind": self.kind,
            "start_frame": self.start,
            "end_frame": self.end,
            "time_s": round(self.start / fps, 3),
            "probability": round(self.probability, 4),
        }


@dataclass(frozen=True)
class Shot:
    index: int
    start: int  # first frame
    end: int  # last frame, inclusive
    transition_in: str  # "start" for the first shot, else the kind of transition before it

    def times(self, fps: float) -> tuple[float, float]:
        return self.start / fps, (self.end + 1) / fps


def windows(frames: np.ndarray) -> np.ndarray:
    """uint8 [n, 27, 48, 3] -> the padded windows [w, 100, 27, 48, 3]."""
    count = len(frames)
    tail = WINDOW_CONTEXT + WINDOW_STEP - (count % WINDOW_STEP or WINDOW_STEP)
    padded = np.concatenate([np.repeat(frames[:1], WINDOW_CONTEXT, 0), frames, np.repeat(frames[-1:], tail, 0)])
    starts = range(0, len(padded) - WINDOW_FRAMES + 1, WINDOW_STEP)
    return np.stack([padded[s : s + WINDOW_FRAMES] for s in starts])


def stitch(per_window: np.ndarray, count: int) -> np.ndarray:
    """[w, 100] window predictions -> [count] per-frame predictions (middle 50 of each)."""
    middle = per_window[:, WINDOW_CONTEXT : WINDOW_CONTEXT + WINDOW_STEP]
    return middle.reshape(-1)[:count]


def find_transitions(
    single: np.ndarray, many: np.ndarray, boundary_threshold: float = 0.5, transition_threshold: float = 0.5
) -> list[Transition]:
    above = single > boundary_threshold
    found: list[Transition] = []
    index = 0
    while index < len(single):
        if not above[index]:
            index += 1
            continue
        run_end = index
        while run_end + 1 < len(single) and above[run_end + 1]:
            run_end += 1
        peak = index + int(np.argmax(single[index : run_end + 1]))
        found.append(_extent(peak, float(single[peak]), many, transition_threshold))
        index = run_end + 1
    return _merge(found)


def _extent(peak: int, probability: float, many: np.ndarray, threshold: float) -> Transition:
    inside = many > threshold
    if not inside[peak]:
        return Transition("cut", peak + 1, peak + 1, probability)
    first, last = peak, peak
    while first > 0 and inside[first - 1]:
        first -= 1
    while last + 1 < len(many) and inside[last + 1]:
        last += 1
    if last - first + 1 >= MIN_GRADUAL_FRAMES:
        return Transition("dissolve", first, last, probability)
    return Transition("cut", peak + 1, peak + 1, probability)


def _merge(transitions: list[Transition]) -> list[Transition]:
    """Two peaks inside one gradual transition are one transition."""
    merged: list[Transition] = []
    for transition in transitions:
        if merged and transition.start <= merged[-1].end + 1:
            last = merged[-1]
            kind = "dissolve" if "dissolve" in (last.kind, transition.kind) else "cut"
            merged[-1] = Transition(
                kind, last.start, max(last.end, transition.end), max(last.probability, transition.probability)
            )
        else:
            merged.append(transition)
    return merged


def shots_between(transitions: list[Transition], count: int) -> list[Shot]:
    shots, start, kind_in = [], 0, "start"
    for transition in transitions:
        end = transition.start - 1
        if end >= start:
            shots.append(Shot(len(shots), start, end, kind_in))
        start = transition.end + 1 if transition.kind == "dissolve" else transition.start
        kind_in = transition.kind
    if start < count:
        shots.append(Shot(len(shots), start, count - 1, kind_in))
    return shots


def timecode(frame: int, fps: float) -> str:
    """HH:MM:SS:FF at the nominal (rounded) frame rate."""
    nominal = max(1, round(fps))
    seconds, frames = divmod(frame, nominal)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}:{frames:02d}"
