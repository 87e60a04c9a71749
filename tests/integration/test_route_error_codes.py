"""Error codes that mean something, on real tritonservers: a caller's mistake is INVALID_ARGUMENT
(gRPC) and 400 (HTTP) on every route and both Python-based backends; a server fault is
INTERNAL (500); a route whose composed model is missing says so. Each server keeps serving."""

from __future__ import annotations

import io
import json
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from clients import RecommendClient
from clients.errors import translate
from export.moderation_image import synthetic
from marquee.errors import InputValidationError, ServerInternalError
from marquee.specs.moderation_text import MAX_TEXTS
from marquee.specs.whisper import LIMITS as TRANSCRIBE_LIMITS
from tests.fixtures_moderation_text import BROKEN_ROUTE, MISCONFIGURED_ROUTE
from tests.integration.conftest import ABSENT_MODEL, CORRUPT_ROUTE, MISSING_RETRIEVAL_ROUTE

pytestmark = pytest.mark.integration

GRPC_CODES = {"invalid": "StatusCode.INVALID_ARGUMENT", "internal": "StatusCode.INTERNAL"}
HTTP_CODES = {"invalid": "400", "internal": "500"}


def _inputs(module, tensors: dict[str, tuple[np.ndarray, str]]) -> list:
    inputs = []
    for name, (array, datatype) in tensors.items():
        tensor = module.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs


def refusal(server, protocol: str, model: str, tensors: dict, parameters: dict | None = None):
    """The InferenceServerException the server answers with (the test fails if it answers)."""
    module = grpcclient if protocol == "grpc" else httpclient
    url = server.grpc_url if protocol == "grpc" else server.http_url
    client = module.InferenceServerClient(url)
    try:
        with pytest.raises(InferenceServerException) as error:
            client.infer(model, _inputs(module, tensors), parameters=parameters)
    finally:
        client.close()
    return error.value


def assert_code(error: InferenceServerException, protocol: str, kind: str, message: str) -> None:
    expected = (GRPC_CODES if protocol == "grpc" else HTTP_CODES)[kind]
    assert str(error.status()) == expected, (error.status(), error.message())
    assert message in error.message(), error.message()


def page_tensors(n: int) -> dict:
    return {
        "user_id": (np.array([7], np.int64), "INT64"),
        "region": (np.array([2], np.int64), "INT64"),
        "history": (np.array([10, 11], np.int64), "INT64"),
        "context": (np.array([1, 20], np.int64), "INT64"),
        "n": (np.array([n], np.int32), "INT32"),
    }


def texts(count: int) -> dict:
    return {"text": (np.array([b"what a lovely episode"] * count, dtype=np.object_), "BYTES")}


PROTOCOLS = ["grpc", "http"]


# -- a caller's mistake: INVALID_ARGUMENT / 400 -------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_recommend_answers_a_bad_page_size_as_invalid_argument(triton, protocol):
    error = refusal(triton, protocol, "recommend", page_tensors(n=0))
    assert_code(error, protocol, "invalid", "n=0; allowed: 1 to 100")
    with RecommendClient(triton.grpc_url, timeout_s=5.0) as client:
        assert len(client.recommend(7, 2, [10, 11], n=5).items) == 5


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_onnxruntime_backend_answers_a_value_the_graph_rejects_as_invalid_argument(triton, protocol):
    error = refusal(triton, protocol, "strict_lookup", {"index": (np.array([[99]], np.int64), "INT64")})
    assert_code(error, protocol, "invalid", "strict_lookup: input rejected")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_moderate_text_answers_too_many_texts_and_an_unknown_precision_as_invalid_argument(text_triton, protocol):
    error = refusal(text_triton, protocol, "moderate_text", texts(MAX_TEXTS + 1))
    assert_code(error, protocol, "invalid", f"allowed: 0 to {MAX_TEXTS} per request")
    error = refusal(text_triton, protocol, "moderate_text", texts(1), parameters={"classifier_precision": "fp8"})
    assert_code(error, protocol, "invalid", "`classifier_precision`='fp8'; allowed: fp32, int8")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_moderate_image_answers_an_empty_request_as_invalid_argument(image_server_alive, protocol):
    empty = {"image": (np.array([], dtype=np.object_), "BYTES")}
    error = refusal(image_server_alive, protocol, "moderate_image", empty)
    assert_code(error, protocol, "invalid", "0 items; allowed 1 to")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_dali_backend_answers_bytes_that_are_not_an_image_as_invalid_argument(image_server_alive, protocol):
    data = np.frombuffer(b"%PDF-1.7 this is not an image at all", np.uint8)[None, :]
    error = refusal(image_server_alive, protocol, "image_preprocess", {"image": (data, "UINT8")})
    assert_code(error, protocol, "invalid", "cannot decode image")
    good = synthetic.encode(synthetic.plain_image(90, 160, 6), ".png")
    with grpcclient.InferenceServerClient(image_server_alive.grpc_url) as client:
        result = client.infer(
            "image_preprocess", _inputs(grpcclient, {"image": (np.frombuffer(good, np.uint8)[None], "UINT8")})
        )
    assert result.as_numpy("original_size").tolist() == [[90, 160]]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_dali_audio_pipeline_answers_bytes_that_are_not_audio_as_invalid_argument(audio_server_alive, protocol):
    data = np.frombuffer(b"RIFF\x00\x00\x00\x00WAVEnot really", np.uint8)[None, :]
    error = refusal(audio_server_alive, protocol, "audio_features", {"audio": (data, "UINT8")})
    assert_code(error, protocol, "invalid", "cannot decode audio")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_transcribe_answers_too_many_clips_as_invalid_argument(transcribe_triton, protocol):
    clips = {"audio": (np.array([b"x"] * (TRANSCRIBE_LIMITS.max_clips + 1), dtype=np.object_), "BYTES")}
    error = refusal(transcribe_triton, protocol, "transcribe", clips)
    assert_code(error, protocol, "invalid", f"at most {TRANSCRIBE_LIMITS.max_clips} per request")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_refused_request_becomes_input_validation_error_in_the_clients(triton, protocol):
    """Marquee's typed clients check the spec first, but not every rule lives in the spec:
    what the server refuses as the caller's mistake must reach callers as theirs too."""
    error = refusal(triton, protocol, "recommend", page_tensors(n=0))
    translated = translate(error, "recommend", "url")
    assert isinstance(translated, InputValidationError) and "n=0" in str(translated)


# -- a server fault: INTERNAL / 500 ----------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_fault_inside_recommend_is_internal_and_the_route_keeps_serving(triton, protocol):
    error = refusal(triton, protocol, CORRUPT_ROUTE, page_tensors(n=5))
    assert_code(error, protocol, "internal", "internal error: IndexError")
    assert isinstance(translate(error, CORRUPT_ROUTE, "url"), ServerInternalError)
    with RecommendClient(triton.grpc_url, timeout_s=5.0) as client:
        assert len(client.recommend(7, 2, [10, 11], n=5).items) == 5


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_fault_inside_moderate_text_is_internal(text_triton, protocol):
    error = refusal(text_triton, protocol, MISCONFIGURED_ROUTE, texts(2))
    assert_code(error, protocol, "internal", "internal error: ValueError")


# -- a composed model that is not loaded ---------------------------------------------------------


def _metric(metrics_url: str, name: str, labels: dict[str, str]) -> float | None:
    with urllib.request.urlopen(metrics_url, timeout=5) as reply:
        text = reply.read().decode()
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{"):
            series, value = line.rsplit(" ", 1)
            found = ",".join(sorted(series[len(name) + 1 : -1].split(",")))
            if found == wanted:
                return float(value)
    return None


def test_a_route_whose_retrieval_is_not_loaded_says_so_everywhere(triton):
    with RecommendClient(triton.grpc_url, timeout_s=5.0, model=MISSING_RETRIEVAL_ROUTE) as client:
        page = client.recommend(7, 2, [10, 11], n=10)
    assert page.degraded and len(page.items) == 10
    assert f"not loaded: {ABSENT_MODEL}" in page.degraded_reason
    assert "popularity order" in page.degraded_reason
    labels = {"route": MISSING_RETRIEVAL_ROUTE, "model": ABSENT_MODEL}
    assert _metric(triton.metrics_url, "marquee_route_dependency_ready", labels) == 0.0
    ready = {"route": MISSING_RETRIEVAL_ROUTE, "model": "ranker_int8"}
    assert _metric(triton.metrics_url, "marquee_route_dependency_ready", ready) == 1.0
    assert f"{MISSING_RETRIEVAL_ROUTE}: composed model(s) not loaded: {ABSENT_MODEL}" in triton.log_path.read_text()
    with RecommendClient(triton.grpc_url, timeout_s=5.0) as client:
        healthy = client.recommend(7, 2, [10, 11], n=10)
    assert "not loaded" not in healthy.degraded_reason


def test_marquee_models_marks_a_route_whose_composed_model_is_missing(triton):
    from rich.console import Console

    from marquee import serving

    console = Console(width=400, record=True, file=io.StringIO())
    console.print(serving.models_table(triton.http_url, triton.admin_key))
    rows = {line.split("│")[1].strip(): line for line in console.export_text().splitlines() if line.count("│") > 3}
    assert f"degraded: not loaded: {ABSENT_MODEL}" in rows[MISSING_RETRIEVAL_ROUTE]
    assert "not loaded" not in rows["recommend"]


def test_moderation_items_of_a_missing_classifier_are_model_errors(text_triton):
    from export.moderation.text_dataset import build_dataset

    # Held-out texts on both sides of the route's ambiguous band: those inside it need the
    # missing stage-2 classifier.
    held_out = [example.text.encode() for example in build_dataset().test[:30]]
    with grpcclient.InferenceServerClient(text_triton.grpc_url) as client:
        result = client.infer(BROKEN_ROUTE, _inputs(grpcclient, {"text": (np.array(held_out, np.object_), "BYTES")}))
    audits = [json.loads(a) for a in result.as_numpy("audit")]
    errors = [audit for audit in audits if audit["decision"] == "error"]
    assert errors and all(audit["error_kind"] == "model" for audit in errors)
    labels = {"route": BROKEN_ROUTE, "model": "no_such_classifier"}
    assert _metric(text_triton.metrics_url, "marquee_route_dependency_ready", labels) == 0.0
