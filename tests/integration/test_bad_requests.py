"""Malformed requests get clear errors, and the server keeps serving the next good one."""

import asyncio
import dataclasses

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
from tritonclient.utils import InferenceServerException

from clients import ModelClient, RankerClient
from marquee.errors import (
    InferenceError,
    InferenceTimeoutError,
    InputValidationError,
    ModelNotReadyError,
    ServerUnavailableError,
)
from marquee.server import free_ports
from marquee.specs.ranker import RANKER_FP32
from tests.integration.conftest import LOOKUP_TABLE, STRICT_LOOKUP

pytestmark = pytest.mark.integration


def raw_input(name, array, datatype=None):
    datatype = datatype or {np.int64: "INT64", np.float32: "FP32", np.float64: "FP64"}[array.dtype.type]
    tensor = grpcclient.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return tensor


GOOD_CATEGORICAL = np.zeros((4, 6), np.int64)
GOOD_DENSE = np.zeros((4, 6), np.float32)

MALFORMED = {
    "wrong dtype": (
        [raw_input("categorical", GOOD_CATEGORICAL), raw_input("dense", GOOD_DENSE.astype(np.float64))],
        r"input 'dense' data-type is 'FP64', but model 'ranker_fp32' expects 'FP32'",
    ),
    "wrong shape": (
        [raw_input("categorical", np.zeros((4, 5), np.int64)), raw_input("dense", GOOD_DENSE)],
        r"unexpected shape for input 'categorical'.*Expected \[-1,6\], got \[4,5\]",
    ),
    "missing input": ([raw_input("categorical", GOOD_CATEGORICAL)], r"missing required input\(s\) \['dense'\]"),
    "batch over max": (
        [raw_input("categorical", np.zeros((1025, 6), np.int64)), raw_input("dense", np.zeros((1025, 6), np.float32))],
        r"batch-size must be <= 1024 for .ranker_fp32.",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
def test_server_rejects_malformed_request_clearly_and_keeps_serving(triton, case):
    inputs, message = MALFORMED[case]
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    with pytest.raises(InferenceServerException, match=f"(?i){message}"):
        client.infer("ranker_fp32", inputs)
    good = client.infer("ranker_fp32", [raw_input("categorical", GOOD_CATEGORICAL), raw_input("dense", GOOD_DENSE)])
    assert good.as_numpy("probability").shape == (4, 1)


def test_marquee_client_rejects_bad_input_before_sending(triton):
    with RankerClient(triton.grpc_url) as client:
        with pytest.raises(InputValidationError, match="`dense` has dtype float64"):
            client.score(GOOD_CATEGORICAL, GOOD_DENSE.astype(np.float64))
        with pytest.raises(InputValidationError, match="batch size 1025; allowed: 1 to 1024"):
            client.score(np.zeros((1025, 6), np.int64), np.zeros((1025, 6), np.float32))
        assert client.score(GOOD_CATEGORICAL, GOOD_DENSE).shape == (4,)


async def test_bad_request_fails_alone_inside_a_dynamic_batch(triton):
    """Four concurrent requests share one batch; the one ONNX Runtime rejects gets the error."""
    client = grpcaio.InferenceServerClient(triton.grpc_url)
    before = await client.get_inference_statistics(STRICT_LOOKUP.name, as_json=True)

    async def lookup(index):
        tensor = grpcaio.InferInput("index", [1, 1], "INT64")
        tensor.set_data_from_numpy(np.array([[index]], np.int64))
        result = await client.infer(STRICT_LOOKUP.name, [tensor])
        return float(result.as_numpy("value")[0, 0])

    outcomes = await asyncio.gather(*(lookup(i) for i in (1, 3, 42, 7)), return_exceptions=True)
    after = await client.get_inference_statistics(STRICT_LOOKUP.name, as_json=True)
    await client.close()

    assert outcomes[0] == LOOKUP_TABLE[1, 0] and outcomes[1] == LOOKUP_TABLE[3, 0] and outcomes[3] == LOOKUP_TABLE[7, 0]
    assert isinstance(outcomes[2], InferenceServerException)
    # An index outside the table is the caller's mistake: ONNX Runtime says InvalidArgument.
    assert outcomes[2].status() == "StatusCode.INVALID_ARGUMENT"
    assert "strict_lookup: input rejected" in outcomes[2].message()
    # All four really did arrive together: fewer model executions than requests.
    stats_before, stats_after = before["model_stats"][0], after["model_stats"][0]
    executions = int(stats_after.get("execution_count", 0)) - int(stats_before.get("execution_count", 0))
    assert executions < 4


def test_unknown_model_becomes_model_not_ready_error(triton):
    spec = dataclasses.replace(RANKER_FP32, name="ranker_missing")
    with ModelClient(spec, triton.grpc_url) as client:
        with pytest.raises(ModelNotReadyError, match="ranker_missing"):
            client.infer(categorical=GOOD_CATEGORICAL, dense=GOOD_DENSE)


def test_timeout_becomes_inference_timeout_error(triton):
    # strict_lookup waits up to 200 ms for a batch to fill; a 50 ms deadline expires first.
    with ModelClient(STRICT_LOOKUP, triton.grpc_url, timeout_s=0.05) as client:
        with pytest.raises(InferenceTimeoutError, match="timed out"):
            client.infer(index=np.array([[1]], np.int64))


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_no_server_becomes_server_unavailable_error(protocol):
    port = free_ports().grpc
    with RankerClient(f"127.0.0.1:{port}", protocol=protocol, timeout_s=2.0) as client:
        with pytest.raises(ServerUnavailableError, match=f"127.0.0.1:{port}"):
            client.score(GOOD_CATEGORICAL, GOOD_DENSE)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_a_value_the_model_rejects_is_the_callers_mistake_not_a_server_fault(triton, protocol):
    url = triton.grpc_url if protocol == "grpc" else triton.http_url
    with ModelClient(STRICT_LOOKUP, url, protocol=protocol) as client:
        with pytest.raises(InputValidationError, match=r"strict_lookup.*(INVALID_ARGUMENT|400)") as error:
            client.infer(index=np.array([[99]], np.int64))
        assert not isinstance(error.value, InferenceServerException | InferenceError)
        assert client.infer(index=np.array([[1]], np.int64))["value"][0, 0] == LOOKUP_TABLE[1, 0]
