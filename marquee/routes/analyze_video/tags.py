"""Scene tags and embeddings of keyframes (EfficientNet-Lite0), and near-duplicates.

The tagger reads a 224x224 RGB crop: the keyframe's central square (ImageNet's
evaluation framing: the subject is usually central; a squashed frame would distort it).
Tags are the top ImageNet classes above a probability floor. The embedding is the
L2-normalised pooled feature vector, so cosine similarity is a dot product: keyframes of
two shots whose embeddings agree above NEAR_DUPLICATE_COSINE are near-duplicates (the
same set-up shot twice, a repeated insert), within a video or across a library.
"""

from __future__ import annotations

import numpy as np

TAGGER_SIZE = 224
NEAR_DUPLICATE_COSINE = 0.92


def tagger_input(rgb: np.ndarray) -> np.ndarray:
    import cv2

    height, width = rgb.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = rgb[top : top + side, left : left + side]
    interpolation = cv2.INTER_AREA if side > TAGGER_SIZE else cv2.INTER_CUBIC
    return cv2.resize(square, (TAGGER_SIZE, TAGGER_SIZE), interpolation=interpolation)


def top_tags(probabilities: np.ndarray, labels: list[str], count: int, floor: float) -> list[dict]:
    order = np.argsort(probabilities)[::-1][:count]
    return [
        {"label": labels[int(i)], "probability": round(float(probabilities[i]), 4)}
        for i in order
        if probabilities[i] >= floor
    ]


def near_duplicates(embeddings: dict[int, np.ndarray], threshold: float = NEAR_DUPLICATE_COSINE) -> dict[int, int]:
    """shot -> the earliest earlier shot whose keyframe embedding is within `threshold`."""
    found: dict[int, int] = {}
    shots = sorted(embeddings)
    for position, shot in enumerate(shots):
        for earlier in shots[:position]:
            if float(np.dot(embeddings[shot], embeddings[earlier])) >= threshold:
                found[shot] = earlier
                break
    return found
