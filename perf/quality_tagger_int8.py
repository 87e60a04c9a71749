"""Can EfficientNet-Lite0 be served in INT8? Static QDQ quantisation (ONNX Runtime,
per-channel weights, calibrated on real footage), measured against the served FP32 model
on held-out images that were not calibration images.

    .venv/bin/python -m perf.quality_tagger_int8

Calibration: 64 frames of the first half of the transnetv2 wheel's footage (frames 0 to
2520). Held out: 24 frames of its second half (2600 onwards) and, where scikit-image and
matplotlib are installed (the `test` extra), 16 photographs they ship (the faces of
tests/facenet_reference.py, and scikit-image's rocket, horse, motorcycle, coffee, cat,
...). Figures per variant: top-1 agreement with FP32, the embedding's cosine similarity
to FP32 (worst and mean), and milliseconds per batch of 8 on this CPU.

The bar an INT8 tagger must pass to be served (marquee/specs/vision.py):
top-1 agreement >= 0.90 and worst embedding cosine >= 0.95 on both held-out sets, and
faster than FP32. Writes perf/reports/tagger_int8.json.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from marquee.specs.vision import INT8_TAGGER_BAR

REPORTS = Path(__file__).resolve().parent / "reports"
FP32_MODEL = Path(__file__).resolve().parent.parent / "model_repository/efficientnet_lite0_fp32/1/model.onnx"
SKIMAGE_PICTURES = (
    "rocket.jpg", "horse.png", "motorcycle_left.png", "coffee.png", "chelsea.png",
    "hubble_deep_field.jpg", "retina.jpg", "color.png", "logo.png", "page.png",
)  # fmt: skip


def held_out_sets() -> dict[str, np.ndarray]:
    from export.vision import footage
    from marquee.routes.analyze_video.tags import tagger_input

    sets = {"footage_second_half": footage.frames(224, 224, start=2600, count=24, step=100)}
    try:
        import cv2
        import skimage

        from tests.facenet_reference import photographs
    except ImportError:
        return sets
    pictures = [tagger_input(image) for name, image in photographs().items() if "@" not in name]
    for name in SKIMAGE_PICTURES:
        image = cv2.imread(str(Path(skimage.__file__).parent / "data" / name), cv2.IMREAD_COLOR)
        if image is not None:
            pictures.append(tagger_input(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)))
    sets["photographs"] = np.stack(pictures)
    return sets


def variants(prepared: Path) -> dict[str, dict]:
    """Name -> quantize_static options: every Conv/Gemm, then sensitive nodes left in FP32."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantType

    graph = onnx.load(str(prepared)).graph
    convs = [n for n in graph.node if n.op_type == "Conv"]
    depthwise = [n.name for n in convs if any(a.name == "group" and a.i > 1 for a in n.attribute)]
    edges = [convs[0].name] + [n.name for n in graph.node if n.op_type in ("Gemm", "MatMul")]  # stem, classifier
    u8s8 = {"activation_type": QuantType.QUInt8, "weight_type": QuantType.QInt8}
    return {
        "all_convs_u8s8": {**u8s8},
        "all_convs_s8s8": {"activation_type": QuantType.QInt8, "weight_type": QuantType.QInt8},
        "stem_and_classifier_fp32": {**u8s8, "nodes_to_exclude": edges},
        "stem_and_classifier_fp32_percentile": {
            **u8s8,
            "nodes_to_exclude": edges,
            "calibrate_method": CalibrationMethod.Percentile,
            "extra_options": {"CalibPercentile": 99.999},
        },
        "depthwise_stem_and_classifier_fp32": {**u8s8, "nodes_to_exclude": edges + depthwise},
    }


def measure(path: Path, sets: dict[str, np.ndarray], reference: dict) -> dict:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    figures = {}
    for name, images in sets.items():
        probabilities, embedding = session.run(["probabilities", "embedding"], {"pixels": images})
        ref_probabilities, ref_embedding = reference[name]
        cosine = (embedding * ref_embedding).sum(1)
        figures[name] = {
            "top1_agreement": round(float((probabilities.argmax(1) == ref_probabilities.argmax(1)).mean()), 4),
            "cosine_min": round(float(cosine.min()), 4),
            "cosine_mean": round(float(cosine.mean()), 4),
        }
    batch = sets["footage_second_half"][:8]
    session.run(None, {"pixels": batch})
    started = time.perf_counter()
    for _ in range(5):
        session.run(None, {"pixels": batch})
    figures["ms_per_batch_of_8"] = round((time.perf_counter() - started) / 5 * 1000, 1)
    return figures


def passes(figures: dict, fp32_ms: float) -> bool:
    sets = [v for v in figures.values() if isinstance(v, dict)]
    return (
        all(s["top1_agreement"] >= INT8_TAGGER_BAR["top1_agreement"] for s in sets)
        and all(s["cosine_min"] >= INT8_TAGGER_BAR["cosine_min"] for s in sets)
        and figures["ms_per_batch_of_8"] < fp32_ms
    )


def main() -> None:
    import onnxruntime as ort
    from onnxruntime.quantization import QuantFormat, quant_pre_process, quantize_static

    from export.quantize import _BatchReader
    from export.vision import footage
    from perf.machine import machine_info

    calibration = footage.frames(224, 224, start=0, count=64, step=40)
    sets = held_out_sets()
    fp32 = ort.InferenceSession(str(FP32_MODEL), providers=["CPUExecutionProvider"])
    reference = {name: fp32.run(["probabilities", "embedding"], {"pixels": x}) for name, x in sets.items()}
    results = {"fp32": measure(FP32_MODEL, sets, reference)}
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(FP32_MODEL), str(prepared), skip_symbolic_shape=True)
        for name, options in variants(prepared).items():
            quantized = Path(tmp) / f"{name}.onnx"
            batches = ({"pixels": calibration[i : i + 8]} for i in range(0, len(calibration), 8))
            quantize_static(
                str(prepared), str(quantized), _BatchReader(batches), quant_format=QuantFormat.QDQ,
                per_channel=True, reduce_range=False, op_types_to_quantize=["Conv", "Gemm", "MatMul"], **options,
            )  # fmt: skip
            results[name] = measure(quantized, sets, reference)
            results[name]["passes"] = passes(results[name], results["fp32"]["ms_per_batch_of_8"])
            print(name, results[name], flush=True)
    report = {
        "benchmark": "EfficientNet-Lite0 static INT8 (QDQ, per-channel) against served FP32 on held-out images",
        "machine": machine_info(),
        "bar": INT8_TAGGER_BAR,
        "held_out": {name: len(images) for name, images in sets.items()},
        "calibration_frames": len(calibration),
        "variants": results,
        "served": next((name for name, r in results.items() if r.get("passes")), "fp32"),
    }
    REPORTS.mkdir(exist_ok=True)
    path = REPORTS / "tagger_int8.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
