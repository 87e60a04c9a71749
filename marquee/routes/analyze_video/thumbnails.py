"""Keyframe and thumbnail scoring on proxy frames (RGB uint8), and the safe top-N choice.

Image quality, measured on the frame itself:
- sharpness: variance of the Laplacian of the grey image (blur and flat frames score
  low), mapped to 0..1 by v / (v + SHARPNESS_HALF);
- exposure: how far the mean brightness is from mid-grey, times the share of pixels that
  are neither crushed black nor clipped white.
A shot's keyframe is its best-quality candidate frame.

Thumbnails: every keyframe is judged by the `moderate_image` route (NudeNet parts and
OCR, the recognised text judged by the text route, all under the moderation policy).
Only "allow" keyframes may become thumbnails: an unsafe or unjudged one is never chosen,
so a video whose every keyframe is unsafe gets no thumbnail rather than an unsafe one.
Burned-in text lowers a thumbnail's score (`TEXT_PENALTY`): captions and lower thirds
make poor thumbnails. A visible face raises it (faces.py, MTCNN on the keyframe): by up to
`FACE_WEIGHT` for the largest confident face, in proportion to its height up to
`FACE_FULL_HEIGHT` of the frame, because people click on thumbnails that show a person
and a face too small to read helps little. Faces weigh in the thumbnail choice only; a
shot's keyframe is still its best-quality candidate (searching every candidate for faces
would cost a cascade per sampled frame).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SHARPNESS_HALF = 300.0  # Laplacian variance that scores 0.5
DARK, BRIGHT = 16, 239  # pixels outside these are crushed or clipped
TEXT_PENALTY = 0.7
FACE_WEIGHT = 0.3  # a frame-filling face: score x1.3
FACE_FULL_HEIGHT = 0.2  # a face this share of the frame's height earns the whole weight
FACE_MIN_PROBABILITY = 0.9  # weaker detections earn nothing (they are still reported)
SAFE = "allow"


@dataclass
class Candidate:
    frame: int
    sharpness: float
    exposure: float
    height: int = 0  # of the frame measured, in pixels
    decision: str | None = None  # moderate_image's decision, once judged
    text: list[str] = field(default_factory=list)
    labels: dict[str, float] = field(default_factory=dict)
    tags: list[dict] | None = None  # EfficientNet-Lite0's top ImageNet classes; None: not tagged
    embedding: np.ndarray | None = None
    faces: list | None = None  # faces.Face found on the frame; None: not searched

    @property
    def quality(self) -> float:
        return 0.6 * self.sharpness + 0.4 * self.exposure

    @property
    def face_term(self) -> float:
        """0..1: the largest confident face's height as a share of FACE_FULL_HEIGHT."""
        heights = [f.height for f in self.faces or () if f.probability >= FACE_MIN_PROBABILITY]
        if not heights or self.height <= 0:
            return 0.0
        return min(1.0, max(heights) / self.height / FACE_FULL_HEIGHT)

    @property
    def score(self) -> float:
        return self.quality * (TEXT_PENALTY if self.text else 1.0) * (1.0 + FACE_WEIGHT * self.face_term)

    @property
    def safe(self) -> bool:
        return self.decision == SAFE


def measure(frame_index: int, rgb: np.ndarray) -> Candidate:
    import cv2

    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    variance = float(cv2.Laplacian(grey, cv2.CV_32F).var())
    mean = float(grey.mean())
    well_exposed = float(((grey >= DARK) & (grey <= BRIGHT)).mean())
    exposure = (1.0 - abs(mean - 128.0) / 128.0) * well_exposed
    return Candidate(frame_index, variance / (variance + SHARPNESS_HALF), exposure, height=rgb.shape[0])


def keyframe(candidates: list[Candidate], start: int, end: int) -> Candidate | None:
    """The best-quality candidate inside [start, end]; for a shot shorter than the
    sampling interval, the candidate nearest its middle."""
    inside = [c for c in candidates if start <= c.frame <= end]
    if inside:
        return max(inside, key=lambda c: c.quality)
    if not candidates:
        return None
    middle = (start + end) / 2
    return min(candidates, key=lambda c: abs(c.frame - middle))


def top_thumbnails(keyframes: list[Candidate], count: int) -> list[Candidate]:
    """The `count` best safe keyframes by score; never an unsafe or unjudged one."""
    return sorted((c for c in keyframes if c.safe), key=lambda c: -c.score)[:count]
