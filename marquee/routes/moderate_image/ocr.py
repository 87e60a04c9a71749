"""Text lines from PP-OCRv4 outputs: DB probability map -> boxes -> crops -> CTC text.

Written for this route (not PaddleOCR's code), with PaddleOCR's published defaults:
pixels above 0.3 are text, a region is kept when its mean probability is >= 0.5, and
its box is grown by area * 1.6 / perimeter on each side, because DB predicts shrunken
text kernels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

LINE_HEIGHT = 48  # recogniser input height
MAX_LINE_WIDTH = 960  # longer lines are squeezed to this width
MIN_BOX_SIDE = 3


@dataclass(frozen=True)
class OcrSettings:
    pixel_threshold: float = 0.3
    box_threshold: float = 0.5
    unclip_ratio: float = 1.6
    max_lines: int = 32


@dataclass(frozen=True)
class TextBox:
    points: np.ndarray  # 4 x 2 float32, clockwise from top-left, in map pixels
    score: float


def text_boxes(probability: np.ndarray, settings: OcrSettings = OcrSettings()) -> list[TextBox]:
    """Boxes of text regions in a [H, W] probability map, top-to-bottom, left-to-right."""
    mask = (probability > settings.pixel_threshold).astype(np.uint8)
    # A 2x2 dilation joins characters the map splits at thin gaps (PaddleOCR's use_dilation).
    mask = cv2.dilate(mask, np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    height, width = probability.shape
    boxes = []
    for contour in contours:
        (cx, cy), (w, h), angle = cv2.minAreaRect(contour)
        if min(w, h) < MIN_BOX_SIDE:
            continue
        score = _mean_inside(probability, contour)
        if score < settings.box_threshold:
            continue
        grow = w * h * settings.unclip_ratio / (2 * (w + h))
        points = cv2.boxPoints(((cx, cy), (w + 2 * grow, h + 2 * grow), angle))
        points[:, 0] = np.clip(points[:, 0], 0, width - 1)
        points[:, 1] = np.clip(points[:, 1], 0, height - 1)
        points = order_clockwise(points)
        if min(np.linalg.norm(points[0] - points[1]), np.linalg.norm(points[0] - points[3])) <= MIN_BOX_SIDE:
            continue
        boxes.append(TextBox(points, score))
    boxes.sort(key=lambda b: (round(float(b.points[0, 1]) / 10), float(b.points[0, 0])))
    return boxes[: settings.max_lines]


def _mean_inside(probability: np.ndarray, contour: np.ndarray) -> float:
    x, y, w, h = cv2.boundingRect(contour)
    region = np.zeros((h, w), np.uint8)
    cv2.fillPoly(region, [contour.reshape(-1, 2) - [x, y]], 1)
    return float(cv2.mean(probability[y : y + h, x : x + w], region)[0])


def order_clockwise(points: np.ndarray) -> np.ndarray:
    """Top-left, top-right, bottom-right, bottom-left."""
    by_x = points[np.argsort(points[:, 0], kind="stable")]
    left = by_x[:2][np.argsort(by_x[:2, 1], kind="stable")]
    right = by_x[2:][np.argsort(by_x[2:, 1], kind="stable")]
    return np.array([left[0], right[0], right[1], left[1]], dtype=np.float32)


def crop_line(pixels: np.ndarray, box: TextBox) -> np.ndarray:
    """The box's content, straightened; tall boxes (vertical text) are turned upright."""
    points = box.points
    width = max(1, int(round(max(np.linalg.norm(points[0] - points[1]), np.linalg.norm(points[3] - points[2])))))
    height = max(1, int(round(max(np.linalg.norm(points[0] - points[3]), np.linalg.norm(points[1] - points[2])))))
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    transform = cv2.getPerspectiveTransform(points, target)
    crop = cv2.warpPerspective(
        pixels, transform, (width, height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    if height / width >= 1.5:
        crop = np.rot90(crop)
    return crop


def recognition_batch(crops: list[np.ndarray]) -> np.ndarray:
    """[N, 3, 48, W] in [-1, 1]: each crop resized to height 48, right-padded to the widest."""
    widths = [min(MAX_LINE_WIDTH, max(1, math.ceil(LINE_HEIGHT * c.shape[1] / c.shape[0]))) for c in crops]
    # The recogniser downsamples width by 8; keep W a multiple so no column is dropped.
    batch_width = max(LINE_HEIGHT * 4, math.ceil(max(widths) / 8) * 8)
    batch = np.zeros((len(crops), 3, LINE_HEIGHT, batch_width), np.float32)
    for i, (crop, width) in enumerate(zip(crops, widths, strict=True)):
        resized = cv2.resize(crop, (width, LINE_HEIGHT)).astype(np.float32)
        batch[i, :, :, :width] = resized.transpose(2, 0, 1) / 127.5 - 1.0
    return batch


def ctc_greedy(probabilities: np.ndarray, charset: list[str]) -> list[tuple[str, float]]:
    """Best path per line: collapse repeats, drop blanks (index 0); confidence = mean
    probability of the emitted characters (0.0 for an empty line)."""
    best = probabilities.argmax(axis=2)
    best_p = probabilities.max(axis=2)
    lines = []
    for indices, probs in zip(best, best_p, strict=True):
        emit = np.ones(len(indices), bool)
        emit[1:] = indices[1:] != indices[:-1]
        emit &= indices != 0
        text = "".join(charset[i] for i in indices[emit])
        lines.append((text, float(probs[emit].mean()) if emit.any() else 0.0))
    return lines


def load_charset(path: str) -> list[str]:
    """The recogniser's symbols: blank, the dictionary in file order, then space."""
    with open(path, encoding="utf-8") as f:
        dictionary = f.read().split("\n")
    if dictionary and dictionary[-1] == "":
        dictionary.pop()
    return ["<blank>", *dictionary, " "]
