"""Decode NudeNet's YOLOv8 output into boxes on the original image.

The constants and geometry follow NudeNet's own `_postprocess` so that the served route
finds the same parts: candidates whose best class score is >= 0.2, class-agnostic
non-maximum suppression at score 0.25 / IoU 0.45, boxes scaled by max(h, w) / 320
(the letterbox pads bottom/right, so there is no offset to remove) and clipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Detection:
    label: str
    score: float
    box: tuple[float, float, float, float]  # x, y, width, height in original pixels

    def as_json(self) -> dict:
        return {"label": self.label, "score": round(self.score, 4), "box": [round(v, 1) for v in self.box]}


@dataclass(frozen=True)
class DetectorSettings:
    min_score: float = 0.2
    nms_min_score: float = 0.25
    nms_iou: float = 0.45


def decode(
    output: np.ndarray,
    original_size: tuple[int, int],
    input_size: int,
    labels: list[str],
    settings: DetectorSettings = DetectorSettings(),
) -> list[Detection]:
    """`output` is one image's [4 + classes, anchors] tensor; `original_size` is (height, width)."""
    if output.shape[0] != 4 + len(labels):
        raise ValueError(f"detector output has {output.shape[0]} rows; expected 4 + {len(labels)} labels")
    rows = output.T
    class_scores = rows[:, 4:]
    best = class_scores.argmax(axis=1)
    scores = class_scores[np.arange(len(rows)), best]
    keep = scores >= settings.min_score
    if not keep.any():
        return []
    height, width = original_size
    scale = max(height, width) / input_size
    cx, cy, w, h = (rows[keep, i] * scale for i in range(4))
    x = np.clip(cx - w / 2, 0, width)
    y = np.clip(cy - h / 2, 0, height)
    w = np.minimum(w, width - x)
    h = np.minimum(h, height - y)
    boxes = np.stack([x, y, w, h], axis=1)
    chosen = non_max_suppression(boxes, scores[keep], settings.nms_min_score, settings.nms_iou)
    return [
        Detection(labels[int(best[keep][i])], float(scores[keep][i]), tuple(float(v) for v in boxes[i])) for i in chosen
    ]


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, min_score: float, max_iou: float) -> list[int]:
    """Indices of boxes (x, y, w, h) kept by greedy NMS, best score first."""
    order = [int(i) for i in np.argsort(-scores, kind="stable") if scores[i] >= min_score]
    x1, y1 = boxes[:, 0], boxes[:, 1]
    x2, y2 = x1 + boxes[:, 2], y1 + boxes[:, 3]
    areas = boxes[:, 2] * boxes[:, 3]
    kept: list[int] = []
    while order:
        current, rest = order[0], np.array(order[1:], dtype=int)
        kept.append(current)
        if not len(rest):
            break
        overlap_w = np.clip(np.minimum(x2[current], x2[rest]) - np.maximum(x1[current], x1[rest]), 0, None)
        overlap_h = np.clip(np.minimum(y2[current], y2[rest]) - np.maximum(y1[current], y1[rest]), 0, None)
        intersection = overlap_w * overlap_h
        union = areas[current] + areas[rest] - intersection
        iou = np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)
        order = [int(i) for i in rest[iou <= max_iou]]
    return kept


def label_scores(detections: list[Detection], labels: list[str]) -> dict[str, float]:
    """Highest score per label over the kept detections (0.0 for labels not found)."""
    scores = dict.fromkeys(labels, 0.0)
    for detection in detections:
        scores[detection.label] = max(scores[detection.label], detection.score)
    return scores
