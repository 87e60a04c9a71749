"""Shot-boundary scoring against planted ground truth, and ffmpeg's scene filter as the
baseline detector.

Matching: a transition is an inclusive frame interval (a cut is one frame: the first
frame of the new shot). A predicted transition matches a planted one when the two
intervals come within `tolerance` frames of each other; each side matches at most once,
in frame order. Predictions carry no trusted type (ffmpeg's filter has none), so scores
are per planted type: recall is the share of planted cuts (or dissolves) matched;
precision counts every unmatched prediction as a false positive against each type, the
conservative choice. F1 is their harmonic mean.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

FFMPEG = "ffmpeg"
TOLERANCE_FRAMES = 2
KINDS = ("cut", "dissolve")


@dataclass
class Score:
    kind: str
    matched: int = 0
    planted: int = 0
    false_positives: int = 0

    @property
    def recall(self) -> float:
        return self.matched / self.planted if self.planted else 1.0

    @property
    def precision(self) -> float:
        found = self.matched + self.false_positives
        return self.matched / found if found else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def add(self, other: Score) -> Score:
        return Score(
            self.kind,
            self.matched + other.matched,
            self.planted + other.planted,
            self.false_positives + other.false_positives,
        )

    def as_json(self) -> dict:
        return {
            "planted": self.planted,
            "matched": self.matched,
            "false_positives": self.false_positives,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
        }


def score(
    planted: Sequence[dict], predicted: Iterable[tuple[int, int]], tolerance: int = TOLERANCE_FRAMES
) -> dict[str, Score]:
    """Scores per kind. `planted`: [{"kind", "start", "end"}]; `predicted`: (start, end) frames."""
    remaining = sorted(predicted)
    matched_kinds: list[str] = []
    for truth in sorted(planted, key=lambda t: t["start"]):
        low, high = truth["start"] - tolerance, truth["end"] + tolerance
        hit = next((p for p in remaining if p[1] >= low and p[0] <= high), None)
        if hit is not None:
            remaining.remove(hit)
            matched_kinds.append(truth["kind"])
    scores = {}
    for kind in KINDS:
        scores[kind] = Score(
            kind,
            matched=matched_kinds.count(kind),
            planted=sum(1 for t in planted if t["kind"] == kind),
            false_positives=len(remaining),
        )
    return scores


def total(per_clip: Iterable[dict[str, Score]]) -> dict[str, Score]:
    sums = {kind: Score(kind) for kind in KINDS}
    for scores in per_clip:
        sums = {kind: sums[kind].add(scores[kind]) for kind in KINDS}
    return sums


def ffmpeg_scene_transitions(path: Path, threshold: float, fps: float) -> list[tuple[int, int]]:
    """ffmpeg's scene changes (`select='gt(scene,T)'`, T in 0..1) as one-frame transitions:
    each selected frame differs from its predecessor by more than T, so it is the first
    frame of a new shot. showinfo numbers frames after selection, so the clip's frame is
    recovered from the presentation time."""
    command = [FFMPEG, "-hide_banner", "-nostats", "-i", str(path)]
    command += ["-vf", f"select='gt(scene,{threshold})',showinfo", "-an", "-f", "null", "-"]
    log = subprocess.run(command, check=True, capture_output=True, text=True).stderr
    seconds = [float(m) for m in re.findall(r"Parsed_showinfo.*?pts_time:\s*([0-9.]+)", log)]
    return [(round(t * fps), round(t * fps)) for t in seconds]
