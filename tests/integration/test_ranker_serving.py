"""The exported ranker served by a real tritonserver, called the way users call it."""

import asyncio

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import triton_to_np_dtype

from clients import AsyncRankerClient, RankerClient
from export.ranker.data import roc_auc
from export.ranker.train import holdout_set, load_checkpoint, predict
from marquee.specs.ranker import RANKER_INT8

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def reference(tiny_checkpoint):
    model, config, _ = load_checkpoint(tiny_checkpoint)
    holdout = holdout_set(config)
    return holdout, predict(model, holdout)[:, 0]


def score_all(client, holdout, batch=1024):
    return np.concatenate(
        [
            client.score(holdout.categorical[s : s + batch], holdout.dense[s : s + batch])
            for s in range(0, len(holdout), batch)
        ]
    )


def test_both_precisions_are_ready(triton):
    client = httpclient.InferenceServerClient(triton.http_url)
    assert client.is_server_ready()
    assert client.is_model_ready("ranker_fp32") and client.is_model_ready("ranker_int8")


@pytest.mark.parametrize("model", ["ranker_fp32", "ranker_int8"])
def test_stock_tritonclient_needs_nothing_but_model_metadata(triton, model):
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    metadata = client.get_model_metadata(model, as_json=True)
    batch = 5
    inputs = []
    for tensor in metadata["inputs"]:
        shape = [batch if int(d) == -1 else int(d) for d in tensor["shape"]]
        infer_input = grpcclient.InferInput(tensor["name"], shape, tensor["datatype"])
        infer_input.set_data_from_numpy(np.ones(shape, triton_to_np_dtype(tensor["datatype"])))
        inputs.append(infer_input)
    result = client.infer(model, inputs)
    (output,) = metadata["outputs"]
    values = result.as_numpy(output["name"])
    assert values.shape == (batch, 1)
    assert np.all((values > 0) & (values < 1))


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_served_fp32_equals_pytorch(triton, reference, protocol):
    holdout, expected = reference
    url = triton.grpc_url if protocol == "grpc" else triton.http_url
    with RankerClient(url, protocol=protocol, precision="fp32") as client:
        served = score_all(client, holdout)
    np.testing.assert_allclose(served, expected, atol=1e-4, rtol=0)


def test_served_int8_within_tolerance_and_auc_drop(triton, reference):
    holdout, expected = reference
    with RankerClient(triton.grpc_url, precision="int8") as client:
        served = score_all(client, holdout)
    assert np.abs(served - expected).max() <= RANKER_INT8.tolerance.atol
    assert np.abs(served - expected).mean() <= RANKER_INT8.tolerance.mean_atol
    assert roc_auc(holdout.clicked, expected) - roc_auc(holdout.clicked, served) < RANKER_INT8.tolerance.max_auc_drop


@pytest.mark.parametrize("protocol", ["grpc", "http"])
async def test_async_client_under_concurrency_matches_pytorch(triton, reference, protocol):
    holdout, expected = reference
    url = triton.grpc_url if protocol == "grpc" else triton.http_url
    async with AsyncRankerClient(url, protocol=protocol) as client:
        pages = [slice(s, s + 64) for s in range(0, 64 * 16, 64)]
        scores = await asyncio.gather(*(client.score(holdout.categorical[p], holdout.dense[p]) for p in pages))
    np.testing.assert_allclose(np.concatenate(scores), expected[: 64 * 16], atol=1e-4, rtol=0)


def test_out_of_vocabulary_ids_are_scored_not_rejected(triton, tiny_checkpoint):
    import torch

    model, _, _ = load_checkpoint(tiny_checkpoint)
    categorical = np.array([[-1, 99, 10**9, -5, 4, 24], [0, 0, 0, 0, 0, 0]], np.int64)
    dense = np.zeros((2, 6), np.float32)
    with RankerClient(triton.grpc_url) as client:
        served = client.score(categorical, dense)
    expected = model(torch.from_numpy(categorical), torch.from_numpy(dense)).detach().numpy()[:, 0]
    np.testing.assert_allclose(served, expected, atol=1e-4)


def test_metrics_endpoint_counts_ranker_requests(triton):
    import urllib.request

    with RankerClient(triton.grpc_url) as client:
        client.score(np.zeros((2, 6), np.int64), np.zeros((2, 6), np.float32))
    text = urllib.request.urlopen(triton.metrics_url, timeout=5).read().decode()
    line = next(row for row in text.splitlines() if row.startswith('nv_inference_request_success{model="ranker_fp32"'))
    assert float(line.rsplit(" ", 1)[1]) >= 1
