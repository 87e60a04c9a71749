"""EfficientNet-Lite0 (export/vision/efficientnet_lite.py) -> ONNX FP32, validated
against the PyTorch definition on real footage frames (no INT8: see marquee/specs/vision.py).

The graph takes uint8 RGB pixels at 224x224 and returns ImageNet probabilities and the
L2-normalised pooled features (the embedding used for near-duplicate search). Class names
come from skl2onnx's ImageNet table (skl2onnx is installed for the text export).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from export.onnx_export import export_to_onnx
from export.validate import ValidationReport
from export.vision import efficientnet_lite, footage
from marquee.specs.vision import EFFICIENTNET_FP32, IMAGENET_CLASSES, TAGGER_SIZE

log = logging.getLogger(__name__)


def labels() -> list[str]:
    """ImageNet's 1000 class names, the first synonym of each ("tench", "goldfish", ...)."""
    from skl2onnx.tutorial.imagenet_classes import class_names

    if set(class_names) != set(range(IMAGENET_CLASSES)):
        raise ValueError(f"skl2onnx's ImageNet table holds {len(class_names)} classes; expected {IMAGENET_CLASSES}")
    return [class_names[index].split(",")[0].strip() for index in range(IMAGENET_CLASSES)]


def validation_frames() -> np.ndarray:
    return footage.frames(TAGGER_SIZE, TAGGER_SIZE, start=2600, count=24, step=100)  # the second half


def export_fp32(model: torch.nn.Module, path: Path) -> Path:
    example = torch.zeros((2, TAGGER_SIZE, TAGGER_SIZE, 3), dtype=torch.uint8)
    return export_to_onnx(model, {"pixels": example}, EFFICIENTNET_FP32, path)


def validate(model: torch.nn.Module, exported: list) -> ValidationReport:
    import onnxruntime as ort

    frames = validation_frames()
    with torch.no_grad():
        probabilities, embedding = (out.numpy() for out in model(torch.from_numpy(frames)))
    report = ValidationReport("efficientnet_lite0 (" + ", ".join(spec.name for spec, _ in exported) + ")")
    for spec, path in exported:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        served_probabilities, served_embedding = session.run(["probabilities", "embedding"], {"pixels": frames})
        tolerance = spec.tolerance
        report.close_to(
            f"{spec.name}.probabilities",
            probabilities,
            served_probabilities,
            tolerance.atol,
            mean_atol=tolerance.mean_atol,
        )
        agreement = float((probabilities.argmax(1) == served_probabilities.argmax(1)).mean())
        cosine = float((embedding * served_embedding).sum(1).min())
        report.at_most(f"{spec.name}.top1_disagreement", 1.0 - agreement, 0.0)
        report.at_most(f"{spec.name}.embedding_cosine_shortfall", 1.0 - cosine, 1e-4)
    return report


def reference_model() -> torch.nn.Module:
    return efficientnet_lite.load()
