"""`marquee export moderation_image`: NudeNet + PP-OCRv4 ONNX files, the DALI pipelines
and the route -> model_repository, checked against NudeNet's own pipeline.

The ONNX files are copied as they ship in the nudenet / rapidocr-onnxruntime packages
(no conversion), so the export is a copy plus checks, skipped when nothing changed.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import logging
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np

from export import artifacts
from export.moderation_image import compare as compare_module
from export.moderation_image import synthetic
from export.route_install import install_route
from export.validate import ValidationReport
from marquee.moderation.policy import default_policy_path
from marquee.moderation.policy_rollout import HISTORY as POLICY_HISTORY
from marquee.preprocess import image as preprocess_module
from marquee.routes import manifest
from marquee.specs.moderation_image import (
    IMAGE_MODERATION_MODELS,
    IMAGE_PREPROCESS,
    IMAGE_PREPROCESS_DETECTOR,
    MODERATE_IMAGE,
    NUDENET,
    OCR_CHARSET,
    OCR_DET,
    OCR_REC,
)

log = logging.getLogger(__name__)
CPU_PIPELINE = "model.cpu.dali"  # read by marquee/backends/dali


def nudenet_model() -> Path:
    import nudenet

    return Path(nudenet.__file__).parent / "320n.onnx"


def nudenet_labels() -> list[str]:
    """NudeNet's label list, as its own postprocessing uses it (a module-level list)."""
    import nudenet.nudenet

    return list(vars(nudenet.nudenet)["__labels"])


def rapidocr_models() -> tuple[Path, Path]:
    # Locate the package without importing it: only its ONNX files are used, and its
    # own imports (Pillow, shapely, ...) are not installed (bootstrap.sh uses --no-deps).
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package rapidocr-onnxruntime is not installed; run ./bootstrap.sh")
    models = Path(next(iter(spec.submodule_search_locations))) / "models"
    return models / "ch_PP-OCRv4_det_infer.onnx", models / "ch_PP-OCRv4_rec_infer.onnx"


def _sources() -> list[Path]:
    return [
        nudenet_model(),
        *rapidocr_models(),
        Path(preprocess_module.__file__),
        default_policy_path(),
        Path(__file__),
        Path(compare_module.__file__),
        *manifest.MODERATE_IMAGE.sources(),
    ]


def _input_hash() -> str:
    versions = ",".join(f"{p}={metadata.version(p)}" for p in ("nvidia-dali-cuda120", "nudenet", "onnxruntime"))
    return artifacts.content_hash(repr(IMAGE_MODERATION_MODELS), versions, *_sources())


def _version_dir(repository: Path, spec) -> Path:
    return Path(repository) / spec.name / str(spec.version)


def export_image_moderation(repository: Path, force: bool = False) -> bool:
    """Install the route and its models; returns False when everything was already current."""
    input_hash = _input_hash()
    specs = (IMAGE_PREPROCESS, IMAGE_PREPROCESS_DETECTOR, NUDENET, OCR_DET, OCR_REC, MODERATE_IMAGE)
    if not force and all(
        artifacts.is_current(_version_dir(repository, spec), input_hash, spec.artifact) for spec in specs
    ):
        return False
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp)
        det_path, rec_path = rapidocr_models()
        labels, charset = _model_metadata(det_path, rec_path)
        (staged / "model.dali").write_bytes(preprocess_module.serialize("gpu"))
        (staged / CPU_PIPELINE).write_bytes(preprocess_module.serialize("cpu"))
        detector_dir = staged / IMAGE_PREPROCESS_DETECTOR.name
        detector_dir.mkdir()
        (detector_dir / "model.dali").write_bytes(preprocess_module.serialize("gpu", ocr=False))
        (detector_dir / CPU_PIPELINE).write_bytes(preprocess_module.serialize("cpu", ocr=False))
        report = _validate(staged / CPU_PIPELINE, labels)
        _validate_detector_only(staged / CPU_PIPELINE, detector_dir / CPU_PIPELINE, report)
        log.info("%s", report.summary())
        report.raise_if_failed()
        stamp = {"input_hash": input_hash, "validation": report.figures}
        versions = {}
        for spec, source in ((NUDENET, nudenet_model()), (OCR_DET, det_path), (OCR_REC, rec_path)):
            shutil.copy2(source, staged / spec.name)
            installed = artifacts.install(staged / spec.name, _version_dir(repository, spec), spec.artifact, stamp)
            versions[spec.name] = {"version": spec.version, "sha256": artifacts.file_digest(installed)[:16]}
        detector_preprocess_dir = _version_dir(repository, IMAGE_PREPROCESS_DETECTOR)
        detector_preprocess_dir.mkdir(parents=True, exist_ok=True)
        shutil.move(str(detector_dir / CPU_PIPELINE), detector_preprocess_dir / CPU_PIPELINE)
        installed = artifacts.install(
            detector_dir / "model.dali", detector_preprocess_dir, IMAGE_PREPROCESS_DETECTOR.artifact, stamp
        )
        versions[IMAGE_PREPROCESS_DETECTOR.name] = {"version": 1, "sha256": artifacts.file_digest(installed)[:16]}
        preprocess_dir = _version_dir(repository, IMAGE_PREPROCESS)
        preprocess_dir.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staged / CPU_PIPELINE), preprocess_dir / CPU_PIPELINE)
        installed = artifacts.install(staged / "model.dali", preprocess_dir, IMAGE_PREPROCESS.artifact, stamp)
        versions[IMAGE_PREPROCESS.name] = {"version": 1, "sha256": artifacts.file_digest(installed)[:16]}
        _install_route(repository, stamp, labels, charset, versions)
    return True


def _model_metadata(det_path: Path, rec_path: Path) -> tuple[list[str], str]:
    """NudeNet's labels (checked against the ONNX file's own) and the recogniser's dictionary."""
    import onnxruntime as ort

    labels = nudenet_labels()
    session = ort.InferenceSession(str(nudenet_model()), providers=["CPUExecutionProvider"])
    onnx_names = ast.literal_eval(session.get_modelmeta().custom_metadata_map["names"])
    if [onnx_names[i] for i in sorted(onnx_names)] != labels:
        raise ValueError(f"nudenet's label list {labels} disagrees with 320n.onnx metadata {onnx_names}")
    rec = ort.InferenceSession(str(rec_path), providers=["CPUExecutionProvider"])
    charset = rec.get_modelmeta().custom_metadata_map["character"]
    symbols = len(charset.rstrip("\n").split("\n")) + 2  # + CTC blank + space
    if symbols != OCR_CHARSET:
        raise ValueError(f"recogniser dictionary gives {symbols} symbols; the spec says {OCR_CHARSET}")
    return labels, charset


def _install_route(repository: Path, stamp: dict, labels, charset: str, versions: dict) -> None:
    params = MODERATE_IMAGE.parameters
    data = {
        params["policy"]: default_policy_path(),
        params["labels"]: json.dumps(labels, indent=1) + "\n",
        params["ocr_keys"]: charset,
        "models.json": json.dumps(versions, indent=1, sort_keys=True) + "\n",
    }
    owned = {params["policy"]: POLICY_HISTORY}
    install_route(manifest.MODERATE_IMAGE, _version_dir(repository, MODERATE_IMAGE), stamp, data, operator_owned=owned)


def _validate_detector_only(full: Path, detector_only: Path, report: ValidationReport) -> None:
    """The pipeline without its OCR branch gives the detector the very same input."""
    from nvidia.dali.pipeline import Pipeline

    pipes = [
        Pipeline.deserialize(serialized_pipeline=path.read_bytes(), device_id=None, num_threads=1)
        for path in (full, detector_only)
    ]
    for pipe in pipes:
        pipe.build()
    for seed, (height, width) in enumerate(synthetic.COMPARISON_SIZES):
        data = np.frombuffer(synthetic.encode(synthetic.blobs_image(height, width, seed)), np.uint8)
        full_out, detector_out = (pipe.run(image=[data]) for pipe in pipes)
        for name, full_index, detector_index in (("detector_input", 0, 0), ("original_size", 3, 1)):
            report.close_to(
                f"{IMAGE_PREPROCESS_DETECTOR.name}.{name}_{height}x{width}",
                np.array(full_out[full_index][0]),
                np.array(detector_out[detector_index][0]),
                0.0,
            )


def _validate(cpu_pipeline: Path, labels: list[str]) -> ValidationReport:
    """DALI letterbox vs NudeNet's OpenCV letterbox, and served detections vs `detect()`."""
    import nudenet.nudenet as reference
    from nvidia.dali.pipeline import Pipeline

    from marquee.routes.moderate_image.detections import decode

    report = ValidationReport("moderation_image (image_preprocess, nudenet_320n)")
    pipe = Pipeline.deserialize(serialized_pipeline=cpu_pipeline.read_bytes(), device_id=None, num_threads=1)
    pipe.build()
    detector = reference.NudeDetector()
    problems: list[str] = []
    for seed, (height, width) in enumerate(synthetic.COMPARISON_SIZES):
        data = synthetic.encode(synthetic.blobs_image(height, width, seed), ".png")
        outputs = pipe.run(image=[np.frombuffer(data, np.uint8)])
        served_input = np.array(outputs[0][0])[None]
        size = tuple(int(v) for v in np.array(outputs[3][0]))
        tolerance = IMAGE_PREPROCESS.tolerance
        expected = reference._read_image(data, 320)[0]
        report.close_to(
            f"detector_input_{height}x{width}", expected, served_input, tolerance.atol, mean_atol=tolerance.mean_atol
        )
        raw = detector.onnx_session.run(None, {detector.input_name: served_input})[0][0]
        served = [d.as_json() for d in decode(raw, size, 320, labels)]
        problems += [
            f"{height}x{width}: {p}" for p in compare_module.detection_mismatches(detector.detect(data), served)
        ]
    report.at_most("detections_differing_from_nudenet", float(len(problems)), 0.0)
    for problem in problems:
        log.warning("detection mismatch: %s", problem)
    return report
