"""MTCNN's P-, R- and O-Net (export/vision/mtcnn_nets.py, facenet-pytorch's weights) ->
ONNX FP32, each validated against the PyTorch definition.

Validation runs each network on real footage (the transnetv2 wheel's clip, the frames the
other vision exports check on): P-Net on whole frames at two sizes (its input size is free),
R-Net and O-Net on crops of those frames. Outputs must agree within the spec's tolerance
and no face decision (probability > the stage's threshold) may flip. The whole cascade is
checked against facenet-pytorch's own `MTCNN.detect` on photographs with faces by
tests/unit/test_faces.py (the photographs come with test-only packages).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from export.onnx_export import export_to_onnx
from export.validate import ValidationReport
from export.vision import footage, mtcnn_nets
from marquee.specs.base import ModelSpec
from marquee.specs.vision import FACES, MTCNN_ONET, MTCNN_PNET, MTCNN_RNET, OUTPUT_SIZE, REFINE_SIZE

log = logging.getLogger(__name__)
SPECS = {"pnet": MTCNN_PNET, "rnet": MTCNN_RNET, "onet": MTCNN_ONET}
THRESHOLDS = {"pnet": FACES.proposal_threshold, "rnet": FACES.refine_threshold, "onet": FACES.output_threshold}
# Example inputs: a batch of 2 (so the batch axis stays dynamic) and, for P-Net, a size that
# is not square (so height and width stay separate dynamic axes).
EXAMPLE_SIZES = {
    "pnet": (2, 54, 96, 3),
    "rnet": (2, REFINE_SIZE, REFINE_SIZE, 3),
    "onet": (2, OUTPUT_SIZE, OUTPUT_SIZE, 3),
}


def reference_models() -> dict[str, torch.nn.Module]:
    return {net: mtcnn_nets.load(net) for net in mtcnn_nets.NETS}


def export_fp32(models: dict[str, torch.nn.Module], folder: Path) -> dict[str, Path]:
    exported = {}
    for net, model in models.items():
        example = torch.rand(EXAMPLE_SIZES[net]) * 255
        exported[net] = export_to_onnx(model, {"pixels": example}, SPECS[net], Path(folder) / f"{net}.onnx")
    return exported


def validation_inputs() -> dict[str, list[np.ndarray]]:
    """Real footage as each network sees it: P-Net whole frames at two sizes, R-Net and
    O-Net crops (a grid of squares over the frames, area-resized)."""
    import cv2

    frames = footage.frames(320, 180, start=2700, count=6, step=200).astype(np.float32)
    small = np.stack([cv2.resize(f, (131, 74), interpolation=cv2.INTER_AREA) for f in frames])
    crops = [f[y : y + 60, x : x + 60] for f in frames for y in (0, 60, 120) for x in range(0, 260, 52)]

    def resized(side: int) -> np.ndarray:
        return np.stack([cv2.resize(c, (side, side), interpolation=cv2.INTER_AREA) for c in crops])

    return {"pnet": [frames, small], "rnet": [resized(REFINE_SIZE)], "onet": [resized(OUTPUT_SIZE)]}


def validate(models: dict[str, torch.nn.Module], exported: dict[str, Path]) -> ValidationReport:
    import onnxruntime as ort

    report = ValidationReport("mtcnn (" + ", ".join(SPECS[net].name for net in exported) + ")")
    for net, inputs in validation_inputs().items():
        spec: ModelSpec = SPECS[net]
        session = ort.InferenceSession(str(exported[net]), providers=["CPUExecutionProvider"])
        names = [t.name for t in spec.outputs]
        for index, batch in enumerate(inputs):
            with torch.no_grad():
                expected = [out.numpy() for out in models[net](torch.from_numpy(batch))]
            served = session.run(names, {"pixels": batch})
            for name, reference, got in zip(names, expected, served, strict=True):
                report.close_to(
                    f"{spec.name}.{name}[{index}]",
                    reference,
                    got,
                    spec.tolerance.atol,
                    mean_atol=spec.tolerance.mean_atol,
                )
            flipped = int(((expected[-1] > THRESHOLDS[net]) != (served[-1] > THRESHOLDS[net])).sum())
            report.at_most(f"{spec.name}.flipped_face_decisions[{index}]", float(flipped), 0.0)
    return report
