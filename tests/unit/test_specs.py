import numpy as np
import pytest

from marquee.errors import UnknownModelError
from marquee.specs import CATALOGUE, DataType, ModelSpec, TensorSpec, get_spec
from marquee.specs.base import BATCH_AXIS, InstanceGroup
from marquee.specs.ranker import CATEGORICAL_FEATURES, DENSE_FEATURES, RANKER_FP32, RANKER_INT8


def test_tensor_spec_rejects_field_names_that_do_not_match_the_last_dim():
    with pytest.raises(ValueError, match="last dim 3 does not match 2 field names"):
        TensorSpec("x", DataType.FP32, (3,), fields=("a", "b"))


def test_named_dims_become_minus_one_and_dynamic_onnx_axes():
    tensor = TensorSpec("tokens", DataType.INT64, ("sequence", 4))
    assert tensor.triton_dims == [-1, 4]
    assert tensor.onnx_dynamic_axes(batched=True) == {0: BATCH_AXIS, 1: "sequence"}
    assert tensor.onnx_dynamic_axes(batched=False) == {0: "sequence"}


def test_perf_analyzer_shapes_only_for_dynamic_dims():
    assert RANKER_FP32.perf_analyzer_shapes() == []
    spec = ModelSpec(
        name="m",
        family="f",
        precision=RANKER_FP32.precision,
        max_batch_size=4,
        inputs=(TensorSpec("tokens", DataType.INT64, ("sequence",)),),
        outputs=(TensorSpec("y", DataType.FP32, (1,)),),
        tolerance=RANKER_FP32.tolerance,
        budget=RANKER_FP32.budget,
    )
    assert spec.perf_analyzer_shapes() == ["tokens:sequence"]


def test_ranker_spec_columns_come_from_the_feature_schema():
    assert RANKER_FP32.input("categorical").fields == tuple(f.name for f in CATEGORICAL_FEATURES)
    assert RANKER_FP32.input("dense").fields == DENSE_FEATURES
    assert RANKER_FP32.input("dense").dtype.numpy is np.float32


def test_fp32_and_int8_rankers_share_their_interface_but_not_their_tolerance():
    assert RANKER_FP32.inputs == RANKER_INT8.inputs and RANKER_FP32.outputs == RANKER_INT8.outputs
    assert RANKER_FP32.tolerance.atol == 1e-4
    assert RANKER_INT8.tolerance.max_auc_drop == 0.01


def test_get_spec_names_the_known_models_when_the_name_is_unknown():
    with pytest.raises(UnknownModelError, match="known models: .*ranker_fp32, ranker_int8"):
        get_spec("rankr")
    assert get_spec("ranker_int8") is CATALOGUE["ranker_int8"]


def test_duplicate_tensor_names_are_rejected():
    with pytest.raises(ValueError, match="tensor names must be unique"):
        ModelSpec(
            name="m",
            family="f",
            precision=RANKER_FP32.precision,
            max_batch_size=1,
            inputs=(TensorSpec("x", DataType.FP32, (1,)),),
            outputs=(TensorSpec("x", DataType.FP32, (1,)),),
            tolerance=RANKER_FP32.tolerance,
            budget=RANKER_FP32.budget,
        )


def test_instance_group_kind_must_be_a_triton_kind():
    with pytest.raises(ValueError, match="allowed: KIND_CPU, KIND_GPU"):
        InstanceGroup(kind="CPU")
