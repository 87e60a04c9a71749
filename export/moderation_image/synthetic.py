"""Synthetic test images, generated on the spot (no downloads, no real people).

Skin-toned blobs on a flat background are enough to make NudeNet fire at moderate
scores, which is what a comparison of two detection pipelines needs; captions drawn
with OpenCV's Hershey fonts give OCR a known ground truth.
"""

from __future__ import annotations

import cv2
import numpy as np


def blobs_image(height: int, width: int, seed: int) -> np.ndarray:
    """BGR image: flat background, blurred skin-toned ellipses with darker centres."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), np.uint8)
    image[:] = rng.integers(0, 255, 3)
    for _ in range(6):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(20, max(21, width // 3))), int(rng.integers(20, max(21, height // 3))))
        skin = tuple(int(v) for v in (rng.integers(90, 140), rng.integers(120, 170), rng.integers(170, 230)))
        cv2.ellipse(image, centre, axes, float(rng.integers(0, 180)), 0, 360, skin, -1)
        cv2.circle(image, centre, max(3, axes[0] // 8), (60, 70, 120), -1)
    return cv2.GaussianBlur(image, (0, 0), 3)


def plain_image(height: int, width: int, seed: int) -> np.ndarray:
    """A calm gradient with a few coloured rectangles: nothing to detect, no text."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(40, 200, width, dtype=np.float32)[None, :, None]
    image = np.broadcast_to(ramp, (height, width, 3)).astype(np.uint8).copy()
    image[..., 0] = 150
    for _ in range(3):
        x, y = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
        colour = tuple(int(v) for v in rng.integers(0, 120, 3))
        cv2.rectangle(image, (x, y), (x + 40, y + 30), colour, -1)
    return image


def caption_image(caption: str, height: int = 600, width: int = 900) -> np.ndarray:
    """A dark-green picture with `caption` in large black letters on a white band."""
    image = np.full((height, width, 3), (40, 120, 60), np.uint8)
    band_top = int(height * 0.7)
    cv2.rectangle(image, (0, band_top), (width, band_top + 100), (255, 255, 255), -1)
    cv2.putText(image, caption, (30, band_top + 75), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (0, 0, 0), 4, cv2.LINE_AA)
    return image


def encode(image: np.ndarray, fmt: str = ".jpg") -> bytes:
    ok, data = cv2.imencode(fmt, image, [cv2.IMWRITE_JPEG_QUALITY, 92] if fmt == ".jpg" else [])
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.shape} image as {fmt}")
    return data.tobytes()


# (height, width) pairs covering landscape, portrait, square, upscaled and odd sizes.
COMPARISON_SIZES = ((480, 640), (640, 480), (300, 300), (1000, 700), (333, 517), (256, 900))
