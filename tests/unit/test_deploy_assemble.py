"""`marquee deploy assemble`: a target's configs plus exported versions, checked with files present."""

from __future__ import annotations

import pytest

from marquee import render
from marquee.deploy.assemble import assemble_repository
from marquee.deploy.errors import DeployError
from marquee.specs.ranker import RANKER_FP32, RANKER_INT8
from marquee.targets import NGC_CPU, NGC_GPU

SPECS = [RANKER_FP32, RANKER_INT8]


def _exported(tmp_path, files: dict[str, list[str]]):
    source = tmp_path / "source"
    render.write(SPECS, source)
    for model, names in files.items():
        for name in names:
            (source / model / "1").mkdir(parents=True, exist_ok=True)
            (source / model / "1" / name).write_bytes(b"onnx bytes")
    return source


def test_assembled_repository_has_target_configs_and_linked_versions(tmp_path):
    source = _exported(tmp_path, {"ranker_fp32": ["model.onnx"], "ranker_int8": ["model.onnx", "model.qdq.onnx"]})
    out = assemble_repository(SPECS, NGC_GPU, source, tmp_path / "out")
    config = render.parse((out / "ranker_int8" / "config.pbtxt").read_text())
    assert config.default_model_filename == "model.qdq.onnx"
    linked = out / "ranker_int8" / "1" / "model.qdq.onnx"
    assert linked.read_bytes() == b"onnx bytes"
    assert linked.stat().st_ino == (source / "ranker_int8" / "1" / "model.qdq.onnx").stat().st_ino


def test_a_file_the_target_loads_but_the_export_lacks_fails_assembly(tmp_path):
    source = _exported(tmp_path, {"ranker_fp32": ["model.onnx"], "ranker_int8": ["model.onnx"]})
    with pytest.raises(DeployError, match="ranker_int8: version 1 lacks model.qdq.onnx"):
        assemble_repository(SPECS, NGC_GPU, source, tmp_path / "out")
    # The CPU target loads model.onnx, which is there.
    assemble_repository(SPECS, NGC_CPU, source, tmp_path / "cpu")


def test_unexported_models_are_named(tmp_path):
    source = _exported(tmp_path, {"ranker_fp32": ["model.onnx"]})
    with pytest.raises(DeployError, match="not exported in .*: ranker_int8"):
        assemble_repository(SPECS, NGC_CPU, source, tmp_path / "out")


def test_offline_files_stay_out_of_the_assembled_repository(tmp_path):
    from marquee.specs.moderation_text import CLASSIFIER_WEIGHTS_FILE, TEXT_CLASSIFIER_FP32, TEXT_CLASSIFIER_INT8

    specs = [TEXT_CLASSIFIER_FP32, TEXT_CLASSIFIER_INT8]
    source = tmp_path / "source"
    render.write(specs, source)
    for spec in specs:
        (source / spec.name / "1").mkdir(parents=True)
        (source / spec.name / "1" / "model.onnx").write_bytes(b"onnx bytes")
    (source / TEXT_CLASSIFIER_FP32.name / "1" / CLASSIFIER_WEIGHTS_FILE).write_bytes(b"pytorch weights")
    out = assemble_repository(specs, NGC_CPU, source, tmp_path / "out")
    assert (out / TEXT_CLASSIFIER_FP32.name / "1" / "model.onnx").is_file()
    assert not (out / TEXT_CLASSIFIER_FP32.name / "1" / CLASSIFIER_WEIGHTS_FILE).exists()
