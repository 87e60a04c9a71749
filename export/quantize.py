"""Static INT8 quantisation with ONNX Runtime, calibrated on representative batches."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quant_pre_process, quantize_static


class _BatchReader(CalibrationDataReader):
    def __init__(self, batches: Iterable[dict[str, np.ndarray]]):
        self._batches = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def quantize_int8_static(
    fp32_path: Path,
    int8_path: Path,
    calibration_batches: Iterable[dict[str, np.ndarray]],
    op_types: tuple[str, ...] = ("Gemm", "MatMul"),
    skip_symbolic_shape: bool = False,
) -> Path:
    """Quantise weights (per channel) and activations of `op_types` to 8 bits.

    `skip_symbolic_shape`: ONNX Runtime's symbolic shape inference gives up on some graphs
    (shapes computed at run time: TransNetV2's frame-similarity lookups, EfficientNet's
    SAME padding); ONNX's own shape inference still runs.

    Choices, measured on the ranker on a 2-core AVX2 host (see perf/bench_ranker_precision.py):
    - QOperator format (QLinearMatMul / QGemm kernels) ran faster on CPU than QDQ;
      TensorRT wants QDQ, so GPU hosts build their engine from the FP32 model instead.
    - reduce_range=True keeps u8s8 products from saturating on CPUs without VNNI.
    - only matrix products are quantised: the embedding Gather and the cross layers'
      element-wise products stay FP32, where re-quantising would cost more than it saves.
    """
    int8_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=skip_symbolic_shape)
        quantize_static(
            str(prepared),
            str(int8_path),
            _BatchReader(calibration_batches),
            quant_format=QuantFormat.QOperator,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
            op_types_to_quantize=list(op_types),
        )
    return int8_path


def quantize_int8_qdq_for_tensorrt(
    fp32_path: Path,
    qdq_path: Path,
    calibration_batches: Iterable[dict[str, np.ndarray]],
    op_types: tuple[str, ...] = ("Gemm", "MatMul"),
) -> Path:
    """The same calibration as `quantize_int8_static`, written as QuantizeLinear /
    DequantizeLinear pairs, which TensorRT (through ONNX Runtime's TensorRT EP, precision
    INT8) builds INT8 engines from. TensorRT wants symmetric INT8: signed activations and
    weights with zero points of 0, and no reduce_range (that is a CPU workaround). The scales
    travel in the graph, so no separate calibration table is needed (ONNX Runtime refuses
    one for a QDQ model)."""
    qdq_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared))
        quantize_static(
            str(prepared),
            str(qdq_path),
            _BatchReader(calibration_batches),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=False,
            op_types_to_quantize=list(op_types),
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
        )
    return qdq_path
