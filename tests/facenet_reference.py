"""The reference for Marquee's MTCNN: facenet-pytorch 2.6.0's own `MTCNN.detect`, and the
photographs with faces it is compared on.

facenet-pytorch imports torchvision for two things: `batched_nms` (its cascade's NMS)
and `transforms.functional` (face crops, which `detect` never uses). The torchvision
wheels on PyPI carry CUDA-built operators that do not load with the CPU torch used here
("operator torchvision::nms does not exist"), so `reference_detector` stands in a
torchvision with one function: `batched_nms` done by OpenCV's `cv2.dnn.NMSBoxes` per
image, with torchvision's rule (keep best first, drop IoU > threshold). Everything else
(pyramid, P/R/O-Net in PyTorch, area resampling, box regression, crops, the final
"Min" NMS) is the package's own code.

Photographs (no model hub, no download: each ships inside a package):
- scikit-image 0.26 `skimage/data/astronaut.png` (Eileen Collins, NASA, public domain),
  `camera.png` (the cameraman), and, without faces, `coffee.png` and `chelsea.png` (a cat);
- matplotlib's `mpl-data/sample_data/grace_hopper.jpg`;
- "pair": astronaut and Grace Hopper side by side, two faces in one frame.
Each at its own size and scaled to 360 lines (the route's proxy height).
"""

from __future__ import annotations

import functools
import sys
import types
from contextlib import contextmanager
from pathlib import Path

import numpy as np

PROXY_HEIGHT = 360


def _opencv_batched_nms(boxes, scores, groups, threshold):
    import cv2
    import torch

    boxes, scores, groups = boxes.numpy().astype(np.float64), scores.numpy().astype(np.float64), groups.numpy()
    keep: list[int] = []
    for group in np.unique(groups):
        members = np.nonzero(groups == group)[0]
        rects = [(x1, y1, x2 - x1, y2 - y1) for x1, y1, x2, y2 in boxes[members].tolist()]
        kept = cv2.dnn.NMSBoxes(rects, scores[members].tolist(), 0.0, float(threshold))
        keep += [int(members[i]) for i in np.asarray(kept).reshape(-1)]
    keep.sort(key=lambda i: -scores[i])
    return torch.as_tensor(keep, dtype=torch.long)


@contextmanager
def _torchvision_stand_in():
    names = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional", "torchvision.ops")
    modules = {name: types.ModuleType(name) for name in (*names, "torchvision.ops.boxes")}
    modules["torchvision.ops.boxes"].batched_nms = _opencv_batched_nms
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


@functools.cache
def reference_detector():
    """facenet-pytorch's MTCNN with its defaults (min face 20 px, thresholds 0.6/0.7/0.7,
    factor 0.709), on the CPU."""
    with _torchvision_stand_in():
        for name in [m for m in sys.modules if m.startswith("facenet_pytorch")]:
            del sys.modules[name]  # bind the package to the stand-in, whatever imported it before
        from facenet_pytorch import MTCNN

        return MTCNN(device="cpu")


def reference_faces(detector, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(boxes [n, 4], probabilities [n]), largest box first, as `MTCNN.detect` returns them."""
    boxes, probabilities = detector.detect(image)
    if boxes is None:
        return np.zeros((0, 4)), np.zeros(0)
    return np.asarray(boxes, dtype=np.float64), np.asarray(probabilities, dtype=np.float64)


def _rgb(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(path)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _to_height(image: np.ndarray, height: int) -> np.ndarray:
    import cv2

    width = round(image.shape[1] * height / image.shape[0])
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


@functools.cache
def photographs() -> dict[str, np.ndarray]:
    """name -> RGB uint8; names ending in @360 are scaled to the proxy height (do not
    modify the arrays: they are shared)."""
    import matplotlib
    import skimage

    data = Path(skimage.__file__).parent / "data"
    hopper = _rgb(Path(matplotlib.__file__).parent / "mpl-data" / "sample_data" / "grace_hopper.jpg")
    images = {
        "astronaut": _rgb(data / "astronaut.png"),
        "camera": _rgb(data / "camera.png"),
        "grace_hopper": hopper,
        "coffee": _rgb(data / "coffee.png"),
        "chelsea": _rgb(data / "chelsea.png"),
    }
    images["pair"] = np.concatenate([_to_height(images["astronaut"], 300), _to_height(hopper, 300)], axis=1)
    for name in ("astronaut", "camera", "grace_hopper", "coffee"):
        images[f"{name}@{PROXY_HEIGHT}"] = _to_height(images[name], PROXY_HEIGHT)
    return images


# Faces a person counts in each photograph (the reference must agree, or it is broken).
FACES_BY_HAND = {"astronaut": 1, "camera": 1, "grace_hopper": 1, "coffee": 0, "chelsea": 0, "pair": 2}

# How close Marquee's cascade must come to the reference, per face: the boxes' corners in
# pixels of the image searched, and the O-Net probability. Measured on these photographs
# with the exported ONNX networks (2026-12-03): corners within 6e-5 px, probabilities equal
# (the same arithmetic; float64 summed-area resizing against PyTorch's float32).
BOX_TOLERANCE_PX = 0.5
PROBABILITY_TOLERANCE = 1e-3


def assert_same_faces(name: str, got: list, boxes: np.ndarray, probabilities: np.ndarray) -> None:
    """`got` (faces.Face, largest first) against the reference's boxes and probabilities."""
    assert len(got) == len(boxes), f"{name}: {len(got)} faces, the reference found {len(boxes)}"
    for face, box, probability in zip(got, boxes, probabilities, strict=True):
        assert np.abs(face.box - box).max() <= BOX_TOLERANCE_PX, (name, face.box.tolist(), box.tolist())
        assert abs(face.probability - probability) <= PROBABILITY_TOLERANCE, (name, face.probability, probability)
