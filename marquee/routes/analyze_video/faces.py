"""MTCNN face detection on keyframes: the cascade around the three served networks.

Per image (all images of one call share a size, as a video's proxy frames do):
1. Pyramid: scales 12/min_face * factor^k while the shorter side stays >= 12 px, so a
   face of min_face px fills P-Net's 12 px window at the first scale.
2. Proposals: P-Net on each scaled image; every 12x12 cell (stride 2) above the first
   threshold becomes a box in image coordinates; NMS (IoU 0.5) per scale, then across
   scales (IoU 0.7); boxes move by P-Net's offsets and are squared.
3. Refinement: each box's crop (clipped to the image), resized to 24x24, goes to R-Net;
   boxes above the second threshold survive NMS (IoU 0.7), move by R-Net's offsets and
   are squared again.
4. Output: 48x48 crops to O-Net; above the third threshold, boxes move by O-Net's
   offsets, the five landmarks are placed, and overlapping boxes are merged by NMS on
   intersection over the smaller box (0.7).

Resizing is area averaging as PyTorch's `interpolate(mode="area")` (adaptive average
pooling) does it, which is what facenet-pytorch's reference used; the box arithmetic
keeps its conventions (offsets scaled by width without +1 after P-Net, with +1 after
R-Net and O-Net; 1-based crop starts). tests/unit/test_faces.py compares this module,
run on the exported ONNX networks, with facenet-pytorch's `MTCNN.detect` on photographs.

The networks are called through `run(stage, pixels)`, an awaitable that returns the
stage's outputs for a float32 batch: the route sends them to Triton (BLS), tests to ONNX
Runtime. Only numpy is needed here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

CELL, STRIDE = 12, 2
REFINE_SIZE, OUTPUT_SIZE = 24, 48
PROPOSAL, REFINE, OUTPUT = "proposal", "refine", "output"
OUTPUTS = {  # what each stage's network returns (marquee/specs/vision.py)
    PROPOSAL: ("offsets", "probability"),
    REFINE: ("offsets", "probability"),
    OUTPUT: ("offsets", "landmarks", "probability"),
}
SCALE_NMS, PROPOSAL_NMS, REFINE_NMS, OUTPUT_NMS = 0.5, 0.7, 0.7, 0.7

Run = Callable[[str, np.ndarray], Awaitable[dict[str, np.ndarray]]]


@dataclass(frozen=True)
class Settings:
    min_face_px: int = 20
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    factor: float = 0.709


@dataclass
class Face:
    box: np.ndarray  # x1, y1, x2, y2 in pixels of the image searched
    probability: float
    landmarks: np.ndarray  # [5, 2]: eyes, nose, mouth corners (x, y)

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    def scaled(self, sx: float, sy: float) -> Face:
        factors = np.array([sx, sy, sx, sy])
        return Face(self.box * factors, self.probability, self.landmarks * np.array([sx, sy]))


# -- image arithmetic -----------------------------------------------------------------


def pyramid(height: int, width: int, settings: Settings) -> list[float]:
    scale = CELL / settings.min_face_px
    shorter = min(height, width) * scale
    scales = []
    while shorter >= CELL:
        scales.append(scale)
        scale *= settings.factor
        shorter *= settings.factor
    return scales


def summed_area(images: np.ndarray) -> np.ndarray:
    """[n, h, w, c] -> [n, h + 1, w + 1, c] float64 table of sums above and left of each
    pixel: any rectangle's sum is four lookups, so every pyramid level and every crop of
    an image is resized from one table."""
    n, h, w, c = images.shape
    table = np.zeros((n, h + 1, w + 1, c), np.float64)
    np.cumsum(images, axis=1, dtype=np.float64, out=table[:, 1:, 1:])
    np.cumsum(table[:, 1:, 1:], axis=2, out=table[:, 1:, 1:])
    return table


def area_resize(table: np.ndarray, height: int, width: int, window: tuple[int, int, int, int] | None = None):
    """The window (top, left, bottom, right; default: whole images) of the images behind
    `table`, resized to [n, height, width, c] float32: output pixel i averages input pixels
    floor(i*h/height) .. ceil((i+1)*h/height) - 1 (adaptive average pooling, which is what
    PyTorch's `interpolate(mode="area")` computes)."""
    top, left, bottom, right = window or (0, 0, table.shape[1] - 1, table.shape[2] - 1)
    h, w = bottom - top, right - left
    rows, cols = np.arange(height), np.arange(width)
    y0, y1 = top + rows * h // height, top + ((rows + 1) * h + height - 1) // height
    x0, x1 = left + cols * w // width, left + ((cols + 1) * w + width - 1) // width
    y0, y1, x0, x1 = y0[:, None], y1[:, None], x0[None, :], x1[None, :]
    total = table[:, y1, x1] - table[:, y0, x1] - table[:, y1, x0] + table[:, y0, x0]
    return (total / ((y1 - y0) * (x1 - x0))[None, :, :, None]).astype(np.float32)


# -- box arithmetic (boxes: [n, 5+]: x1, y1, x2, y2, score, ...) ------------------------


def nms(boxes: np.ndarray, threshold: float, smaller: bool = False) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first. IoU on areas
    (x2 - x1) * (y2 - y1); with `smaller`, overlap over the smaller box on +1 areas
    (the O-Net stage's "Min" merge)."""
    x1, y1, x2, y2, score = (boxes[:, i] for i in range(5))
    extra = 1.0 if smaller else 0.0
    area = (x2 - x1 + extra) * (y2 - y1 + extra)
    order = np.argsort(-score, kind="stable")
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        overlap_w = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + extra)
        overlap_h = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + extra)
        inter = overlap_w * overlap_h
        union = np.minimum(area[best], area[rest]) if smaller else area[best] + area[rest] - inter
        order = rest[inter / np.maximum(union, 1e-12) <= threshold]
    return np.array(keep, dtype=np.int64)


def square(boxes: np.ndarray) -> np.ndarray:
    """Each box grown to a square about its centre (the next network reads square crops)."""
    boxes = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    boxes[:, 0] += (w - side) / 2
    boxes[:, 1] += (h - side) / 2
    boxes[:, 2] = boxes[:, 0] + side
    boxes[:, 3] = boxes[:, 1] + side
    return boxes


def regress(boxes: np.ndarray, offsets: np.ndarray, plus_one: bool) -> np.ndarray:
    boxes = boxes.copy()
    extra = 1.0 if plus_one else 0.0
    w, h = boxes[:, 2] - boxes[:, 0] + extra, boxes[:, 3] - boxes[:, 1] + extra
    boxes[:, :4] += offsets * np.stack([w, h, w, h], axis=1)
    return boxes


def proposals(offsets: np.ndarray, probability: np.ndarray, scale: float, threshold: float) -> np.ndarray:
    """One image's P-Net map -> [n, 9] boxes (x1, y1, x2, y2, score, 4 offsets) in image pixels."""
    rows, cols = np.nonzero(probability >= threshold)
    corner = np.stack([cols, rows], axis=1).astype(np.float32)
    start = np.floor((STRIDE * corner + 1) / scale)
    end = np.floor((STRIDE * corner + CELL) / scale)
    score = probability[rows, cols][:, None]
    return np.concatenate([start, end, score, offsets[rows, cols]], axis=1).astype(np.float32)


def crops(table: np.ndarray, boxes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(crops [n, size, size, 3], the indices of the boxes that overlap the image): each box
    truncated to whole pixels and clipped to the image (`table`: its summed_area of
    shape [1, h + 1, w + 1, 3]), then area-resized."""
    height, width = table.shape[1] - 1, table.shape[2] - 1
    whole = np.trunc(boxes[:, :4]).astype(np.int64)
    x1, y1 = np.maximum(whole[:, 0], 1), np.maximum(whole[:, 1], 1)
    x2, y2 = np.minimum(whole[:, 2], width), np.minimum(whole[:, 3], height)
    inside = np.nonzero((x2 > x1 - 1) & (y2 > y1 - 1))[0]
    resized = [area_resize(table, size, size, (y1[i] - 1, x1[i] - 1, y2[i], x2[i]))[0] for i in inside]
    empty = np.zeros((0, size, size, 3), np.float32)
    return (np.stack(resized) if resized else empty), inside


# -- the cascade ------------------------------------------------------------------------


async def detect(images: list[np.ndarray], run: Run, settings: Settings = Settings()) -> list[list[Face]]:
    """Faces in each RGB image (all of one size), largest first. Each stage sends the crops
    of every image in one batch (`run` may split it)."""
    if not images:
        return []
    table = summed_area(np.stack(images))
    boxes = await _propose(table, run, settings)
    boxes = await _refine(table, boxes, run, settings.thresholds[1])
    return await _output(table, boxes, run, settings.thresholds[2])


async def _propose(table: np.ndarray, run: Run, settings: Settings) -> list[np.ndarray]:
    count, height, width = table.shape[0], table.shape[1] - 1, table.shape[2] - 1
    found: list[list[np.ndarray]] = [[] for _ in range(count)]
    for scale in pyramid(height, width, settings):
        scaled = area_resize(table, int(height * scale + 1), int(width * scale + 1))
        outputs = await run(PROPOSAL, scaled)
        for index in range(count):
            boxes = proposals(outputs["offsets"][index], outputs["probability"][index], scale, settings.thresholds[0])
            found[index].append(boxes[nms(boxes, SCALE_NMS)])
    proposed = []
    for per_scale in found:
        boxes = np.concatenate(per_scale) if per_scale else np.zeros((0, 9), np.float32)
        boxes = boxes[nms(boxes, PROPOSAL_NMS)]
        proposed.append(square(regress(boxes[:, :5], boxes[:, 5:9], plus_one=False)))
    return proposed


async def _judge_crops(table: np.ndarray, boxes: list[np.ndarray], run: Run, stage: str, size: int, threshold: float):
    """Per image: (its boxes that the stage passed, as [n, 5] with the stage's score, and
    the stage's outputs for them), from one batch of every image's crops."""
    pixels, owners, kept_boxes = [], [], []
    for index, found in enumerate(boxes):
        if len(found):
            cropped, inside = crops(table[index : index + 1], found, size)
            pixels.append(cropped)
            owners += [index] * len(inside)
            kept_boxes.append(found[inside, :4])
    if not owners:
        return [(np.zeros((0, 5), np.float32), {}) for _ in boxes]
    outputs = await run(stage, np.concatenate(pixels))
    owners_array, all_boxes = np.array(owners), np.concatenate(kept_boxes)
    score = outputs["probability"][:, 0]
    judged = []
    for index in range(len(boxes)):
        chosen = (owners_array == index) & (score > threshold)
        scored = np.concatenate([all_boxes[chosen], score[chosen, None]], axis=1)
        judged.append((scored, {name: value[chosen] for name, value in outputs.items()}))
    return judged


async def _refine(table: np.ndarray, boxes: list[np.ndarray], run: Run, threshold: float) -> list[np.ndarray]:
    refined = []
    for scored, outputs in await _judge_crops(table, boxes, run, REFINE, REFINE_SIZE, threshold):
        if not len(scored):
            refined.append(scored)
            continue
        order = nms(scored, REFINE_NMS)
        refined.append(square(regress(scored[order], outputs["offsets"][order], plus_one=True)))
    return refined


async def _output(table: np.ndarray, boxes: list[np.ndarray], run: Run, threshold: float) -> list[list[Face]]:
    faces = []
    for scored, outputs in await _judge_crops(table, boxes, run, OUTPUT, OUTPUT_SIZE, threshold):
        if not len(scored):
            faces.append([])
            continue
        points = outputs["landmarks"]
        w, h = scored[:, 2] - scored[:, 0] + 1, scored[:, 3] - scored[:, 1] + 1
        xs = w[:, None] * points[:, :5] + scored[:, 0:1] - 1
        ys = h[:, None] * points[:, 5:] + scored[:, 1:2] - 1
        moved = regress(scored, outputs["offsets"], plus_one=True)
        found = [
            Face(moved[i, :4].astype(np.float64), float(moved[i, 4]), np.stack([xs[i], ys[i]], axis=1))
            for i in nms(moved, OUTPUT_NMS, smaller=True)
        ]
        faces.append(sorted(found, key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1])))
    return faces
