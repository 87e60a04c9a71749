import numpy as np
import pytest

from clients.validation import validate_inputs
from marquee.errors import InputValidationError
from marquee.specs.ranker import RANKER_FP32


def good(batch=3):
    return {"categorical": np.zeros((batch, 6), np.int64), "dense": np.zeros((batch, 6), np.float32)}


def test_valid_request_passes_through_unchanged():
    arrays = validate_inputs(RANKER_FP32, good())
    assert arrays["categorical"].shape == (3, 6) and arrays["dense"].dtype == np.float32


def test_python_lists_are_built_with_the_spec_dtype():
    arrays = validate_inputs(RANKER_FP32, {"categorical": [[1, 2, 3, 4, 0, 5]], "dense": [[0.5] * 6]})
    assert arrays["categorical"].dtype == np.int64 and arrays["dense"].dtype == np.float32


def test_wrong_dtype_names_the_input_the_dtype_and_what_is_allowed():
    request = good()
    request["dense"] = request["dense"].astype(np.float64)
    with pytest.raises(InputValidationError, match=r"`dense` has dtype float64; allowed: float32 \(FP32\)"):
        validate_inputs(RANKER_FP32, request)


def test_wrong_shape_names_the_columns():
    request = good()
    request["categorical"] = np.zeros((3, 5), np.int64)
    with pytest.raises(
        InputValidationError, match=r"`categorical` has shape \[3, 5\]; allowed: \['batch', 6\].*user_id"
    ):
        validate_inputs(RANKER_FP32, request)


def test_missing_and_unknown_inputs_are_both_listed():
    with pytest.raises(InputValidationError, match=r"missing inputs \['dense'\], unknown inputs \['dens'\]"):
        validate_inputs(RANKER_FP32, {"categorical": good()["categorical"], "dens": good()["dense"]})


def test_batch_over_max_batch_size_says_the_limit():
    with pytest.raises(InputValidationError, match="batch size 1025; allowed: 1 to 1024"):
        validate_inputs(RANKER_FP32, good(1025))


def test_empty_batch_is_rejected():
    with pytest.raises(InputValidationError, match="batch size 0"):
        validate_inputs(RANKER_FP32, good(0))


def test_inputs_must_agree_on_batch_size():
    request = good()
    request["dense"] = np.zeros((2, 6), np.float32)
    with pytest.raises(InputValidationError, match="disagree on batch size"):
        validate_inputs(RANKER_FP32, request)


def test_non_finite_value_is_located_by_row_and_column_name():
    request = good()
    request["dense"][2, 3] = np.nan
    with pytest.raises(InputValidationError, match=r"`dense`\[2, 3\] \(item_age_years\) = .*nan.* not finite"):
        validate_inputs(RANKER_FP32, request)


def test_unconvertible_list_is_a_validation_error():
    with pytest.raises(InputValidationError, match="cannot be read as INT64"):
        validate_inputs(RANKER_FP32, {"categorical": [["a"] * 6], "dense": [[0.0] * 6]})


def test_server_statuses_map_to_callers_mistakes_and_server_faults():
    from tritonclient.utils import InferenceServerException

    from clients.errors import translate
    from marquee.errors import (
        AdminKeyRequiredError,
        InferenceError,
        InputValidationError,
        ModelNotReadyError,
        ServerInternalError,
        ServerUnavailableError,
    )

    def mapped(status, message="m"):
        return translate(InferenceServerException(msg=message, status=status), "model", "url")

    assert isinstance(mapped("StatusCode.INVALID_ARGUMENT"), InputValidationError)
    assert isinstance(mapped("400"), InputValidationError)
    assert not isinstance(mapped("400"), InferenceError)
    assert isinstance(mapped("StatusCode.INTERNAL"), ServerInternalError)
    assert isinstance(mapped("500"), ServerInternalError)
    assert isinstance(mapped("StatusCode.UNAVAILABLE", "failed to connect"), ServerUnavailableError)
    assert isinstance(
        mapped("StatusCode.UNAVAILABLE", "This protocol is restricted, expecting header"), AdminKeyRequiredError
    )
    assert isinstance(mapped("403"), AdminKeyRequiredError)
    assert isinstance(mapped("StatusCode.NOT_FOUND", "Request for unknown model"), ModelNotReadyError)
