"""Export parity: the exported ONNX models against the PyTorch ranker they came from."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from export import artifacts
from export.ranker.pipeline import export_ranker, run_onnx, validate_ranker
from export.ranker.train import holdout_set, load_checkpoint, predict
from marquee.errors import CheckpointError, ExportValidationError
from marquee.specs import Precision, Tolerance
from marquee.specs.ranker import RANKER_FP32, RANKER_INT8


def stamp(repository, spec):
    return json.loads((repository / spec.name / "1" / artifacts.STAMP).read_text())


def test_trained_ranker_beats_chance_on_the_holdout(tiny_checkpoint):
    _, _, metrics = load_checkpoint(tiny_checkpoint)
    assert metrics["holdout_auc"] > 0.65
    assert metrics["holdout_auc"] <= metrics["oracle_auc"] + 0.01


def test_fp32_export_matches_pytorch_within_1e_4(exported_repository, tiny_checkpoint):
    model, config, _ = load_checkpoint(tiny_checkpoint)
    holdout = holdout_set(config)
    onnx_out = run_onnx(exported_repository / "ranker_fp32" / "1" / "model.onnx", holdout, 1024)
    np.testing.assert_allclose(onnx_out, predict(model, holdout), atol=1e-4, rtol=0)
    assert stamp(exported_repository, RANKER_FP32)["validation"]["probability[holdout]_max_abs_diff"] <= 1e-4


def test_int8_export_keeps_auc_within_the_documented_drop(exported_repository):
    figures = stamp(exported_repository, RANKER_INT8)["validation"]
    assert figures["auc_drop"] < 0.01
    assert figures["probability[holdout]_max_abs_diff"] <= RANKER_INT8.tolerance.atol
    assert figures["probability[holdout]_mean_abs_diff"] > 0  # it really is a different (quantised) model


def test_int8_graph_uses_integer_kernels(exported_repository):
    import onnx

    ops = {node.op_type for node in onnx.load(exported_repository / "ranker_int8" / "1" / "model.onnx").graph.node}
    assert ops & {"QLinearMatMul", "QGemm", "MatMulInteger"}, ops


def test_exported_model_accepts_batch_1_and_max_batch(exported_repository):
    import onnxruntime as ort

    session = ort.InferenceSession(str(exported_repository / "ranker_fp32" / "1" / "model.onnx"))
    for batch in (1, RANKER_FP32.max_batch_size):
        out = session.run(
            None, {"categorical": np.zeros((batch, 6), np.int64), "dense": np.zeros((batch, 6), np.float32)}
        )
        assert out[0].shape == (batch, 1)


def test_second_export_is_skipped_when_inputs_are_unchanged(copy_of_repository, tiny_checkpoint):
    results = export_ranker(copy_of_repository, (Precision.FP32, Precision.INT8), checkpoint=tiny_checkpoint)
    assert [r.skipped for r in results] == [True, True]


def test_tampered_artifact_is_exported_again(copy_of_repository, tiny_checkpoint):
    (copy_of_repository / "ranker_fp32" / "1" / "model.onnx").write_bytes(b"not an onnx model")
    (result,) = export_ranker(copy_of_repository, (Precision.FP32,), checkpoint=tiny_checkpoint)
    assert not result.skipped
    assert result.path.stat().st_size > 10_000


def test_validation_collects_every_failure_into_one_error(exported_repository, tiny_checkpoint):
    model, config, _ = load_checkpoint(tiny_checkpoint)
    holdout = holdout_set(config)
    impossible = dataclasses.replace(RANKER_INT8, tolerance=Tolerance(atol=1e-9, mean_atol=1e-9, max_auc_drop=-1.0))
    report = validate_ranker(
        impossible, exported_repository / "ranker_int8" / "1" / "model.onnx", model, holdout, predict(model, holdout)
    )
    assert len(report.failures) == 4
    with pytest.raises(ExportValidationError, match="4 of 4 checks failed") as error:
        report.raise_if_failed()
    assert "✗ auc_drop" in str(error.value) and "✗ probability[batch 1, OOV ids]" in str(error.value)


def test_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="--checkpoint .*nope.pt"):
        export_ranker(tmp_path, (Precision.FP32,), checkpoint=tmp_path / "nope.pt")


def test_foreign_checkpoint_is_rejected_with_the_expected_format(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": 1}, path)
    with pytest.raises(CheckpointError, match="expected format `marquee-ranker/1`"):
        load_checkpoint(path)
