"""The fast fuzz profile: hostile requests, generated from the specs, to every model each
test server holds, over gRPC and HTTP (perf/fuzz/cases.py), with the invariants checked
after every case (perf/fuzz/probe.py): a result or INVALID_ARGUMENT / 400 naming the
problem, the server live and ready, no Python stub dead, resident memory bounded.

Derandomized, so CI runs the same cases every time; `MARQUEE_FUZZ_EXAMPLES_SCALE` scales the
counts. The case counts per model are printed at the end of the module. The long profile
is `python -m perf.fuzz_long` (perf/reports/fuzz.json).

Below: one regression test per bug the fuzzer found.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from hypothesis import HealthCheck, Phase, given, settings
from tritonclient.utils import InferenceServerException

from marquee.specs import CATALOGUE
from marquee.specs.whisper import WHISPER_BASE_MODELS
from perf.fuzz import payloads
from perf.fuzz.cases import requests_for
from perf.fuzz.probe import Fuzzer, ServerProcesses

pytestmark = pytest.mark.integration

SCALE = float(os.environ.get("MARQUEE_FUZZ_EXAMPLES_SCALE", "1"))
# Cases per model: cheap models get more; routes that decode media or run Whisper fewer.
EXAMPLES = {"default": 10, "heavy": 4}
HEAVY = {"transcribe", "transcribe_int8", "analyze_video", "moderate_image", "whisper_decoder_fp32",
         "whisper_decoder_int8", "whisper_encoder_fp32", "whisper_encoder_int8", "transnetv2_fp32",
         "transnetv2_int8", "ocr_det_ppocrv4", "nudenet_320n"}  # fmt: skip
# Resident memory of a server and its stubs may grow this much over its fuzzing (caches,
# allocator arenas): the most measured without a bomb is 840 MiB (the transcription server:
# first batch-8 encoder calls, PyAV's decode buffers, 2026-12-03). The bombs the fuzzer
# found cost 4.6 GB (a Whisper decoder step at 1,500 tokens) and 9 GB (a 1 Hz WAV).
RSS_GROWTH_LIMIT = 1536 * 1024 * 1024
SERVERS = ["triton", "text_triton", "image_triton", "audio_triton", "transcribe_triton", "video_triton"]


# Whisper base runs the same backend and route code as tiny.en, which the fast profile
# fuzzes; its first batch-8 encoder calls alone grow the stubs by about 2 GB of ONNX Runtime
# arena (measured), which would hide a bomb under the growth limit. The long profile
# (perf/fuzz_long.py) fuzzes every exported model, base included.
NOT_IN_FAST_PROFILE = {spec.name for spec in WHISPER_BASE_MODELS}


def served_models(server) -> list[str]:
    """READY models of the server that have a spec (test-only variants have none)."""
    with httpclient.InferenceServerClient(server.http_url) as client:
        index = client.get_model_repository_index(headers=server.admin_key.http_headers())
    ready = {m["name"] for m in index if m.get("state") == "READY" and m["name"] in CATALOGUE}
    return sorted(ready - NOT_IN_FAST_PROFILE)


def fuzz(fuzzer: Fuzzer, model: str) -> None:
    spec = CATALOGUE[model]
    examples = max(1, round(EXAMPLES["heavy" if model in HEAVY else "default"] * SCALE))

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=requests_for(spec))
    def one(case):
        fuzzer.run(spec, case)

    one()


@pytest.mark.parametrize("server_fixture", SERVERS)
def test_hostile_requests_get_answers_or_named_refusals_and_break_nothing(server_fixture, request, fuzz_tallies):
    server = request.getfixturevalue(server_fixture)
    models = served_models(server)
    assert models, f"{server_fixture} serves no model with a spec"
    fuzzer = Fuzzer(server.grpc_url, server.http_url, server.process.pid, server.log_path)
    assert fuzzer.stubs, "no Python stub found under the server: the stub check would check nothing"
    started = time.monotonic()
    try:
        for model in models:
            fuzz(fuzzer, model)
    finally:
        fuzz_tallies[server_fixture] = (fuzzer.tally, time.monotonic() - started)
    assert set(fuzzer.tally.cases) == set(models)
    assert sum(n for (_, status), n in fuzzer.tally.outcomes.items() if status == "refused") > 0
    growth = fuzzer.rss_growth()
    assert growth < RSS_GROWTH_LIMIT, f"server + stubs grew by {growth / 2**20:.0f} MiB while fuzzing"


# -- regressions: bugs the fuzzer found ------------------------------------------------


def _send_audio(url: str, protocol: str, model: str, data: bytes, timeout_s: float = 30.0):
    module = grpcclient if protocol == "grpc" else httpclient
    if model == "audio_features":
        tensor = module.InferInput("audio", [1, len(data)], "UINT8")
        tensor.set_data_from_numpy(np.frombuffer(data, np.uint8)[None])
    else:
        tensor = module.InferInput("audio", [1], "BYTES")
        tensor.set_data_from_numpy(np.array([data], dtype=np.object_))
    client = (
        module.InferenceServerClient(url)
        if protocol == "grpc"
        else module.InferenceServerClient(url, network_timeout=timeout_s)
    )
    try:
        extra = {"client_timeout": timeout_s} if protocol == "grpc" else {}
        return client.infer(model, [tensor], **extra)
    finally:
        client.close()


def _decoder_step(spec, tokens: int, past: int) -> list:
    """One decode step for `spec` with `tokens` new tokens and a cache of `past`, zeros."""
    sizes = {"tokens": tokens, "past_length": past}
    inputs = []
    for tensor in spec.inputs:
        shape = [1, *(sizes[d] if isinstance(d, str) else d for d in tensor.dims)]
        dtype = np.int64 if tensor.name == "input_ids" else np.float32
        wire = grpcclient.InferInput(tensor.name, shape, "INT64" if dtype == np.int64 else "FP32")
        wire.set_data_from_numpy(np.zeros(shape, dtype))
        inputs.append(wire)
    return inputs


def test_a_decoder_step_past_whispers_context_is_refused_naming_the_axis(transcribe_triton):
    """Found by the long profile: a `whisper_decoder_fp32` step at 1,500 tokens drove its
    stub past 4 GB until the OOM killer took it. Whisper's context is 448 tokens; the spec
    bounds both axes and the backend refuses a larger size before the graph runs."""
    spec = CATALOGUE["whisper_decoder_fp32"]
    processes = ServerProcesses(transcribe_triton.process.pid)
    before = processes.rss_bytes()
    with grpcclient.InferenceServerClient(transcribe_triton.grpc_url) as client:
        for tokens, past, axis in ((449, 0, "tokens"), (1, 1_500, "past_length")):
            with pytest.raises(InferenceServerException) as refused:
                client.infer(spec.name, _decoder_step(spec, tokens, past), client_timeout=60)
            assert str(refused.value.status()) == "StatusCode.INVALID_ARGUMENT"
            assert f"on axis `{axis}`; allowed: 0 to 448" in refused.value.message()
        at_the_limit = client.infer(spec.name, _decoder_step(spec, 4, 444), client_timeout=60)
    assert at_the_limit.as_numpy("logits").shape == (1, 51864)
    assert processes.rss_bytes() - before < 512 * 2**20


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_a_tiny_wav_claiming_1_hz_is_refused_before_decoding(audio_server_alive, protocol):
    """Found by the fuzzer: a 20 kB WAV whose header says 1 Hz made the resampler produce
    320 million samples (9 GB resident, over 2 minutes of CPU) before any limit applied."""
    server = audio_server_alive
    processes = ServerProcesses(server.process.pid)
    before = processes.rss_bytes()
    url = server.grpc_url if protocol == "grpc" else server.http_url
    bomb = payloads.wav(sample_rate=1, channels=1, bits=8, frames=20_000)
    started = time.monotonic()
    with pytest.raises(InferenceServerException) as refused:
        _send_audio(url, protocol, "audio_features", bomb)
    assert time.monotonic() - started < 5.0
    assert str(refused.value.status()) == {"grpc": "StatusCode.INVALID_ARGUMENT", "http": "400"}[protocol]
    assert "wav header says 1 Hz; allowed: 4000 to 384000 Hz" in refused.value.message()
    assert processes.rss_bytes() - before < 64 * 2**20
    honest = _send_audio(url, protocol, "audio_features", payloads.honest_wav(0.5))
    assert int(honest.as_numpy("num_samples").reshape(-1)[0]) == 8_000


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_the_dali_image_pipeline_reads_each_header_before_decoding(image_server_alive, protocol):
    """Found by the long profile (200 cases): a batch of hostile items to `image_preprocess`
    crashed its stub inside DALI's OpenCV decoder (a 52 TB allocation refused, then a
    segfault). DALI decodes any format it recognises and trusts its header; the backend now
    applies the route's own header check to each item first: JPEG or PNG, at most
    `max_image_pixels`. The 197 kB PNG below claims 5000 x 10000 pixels, all real."""
    server = image_server_alive
    url = server.grpc_url if protocol == "grpc" else server.http_url
    module = grpcclient if protocol == "grpc" else httpclient
    processes = ServerProcesses(server.process.pid)
    stubs = processes.stubs()
    big = payloads.png(5000, 10_000)
    not_jpeg_or_png = b"BM" + (10**9).to_bytes(4, "little") + bytes(64)  # a BMP header
    for item, message in (
        (big, "5000x10000 = 50000000 pixels; the limit (max_image_pixels) is 40000000"),
        (not_jpeg_or_png, "not a JPEG or PNG (starts with 424d"),
    ):
        width = max(len(big), len(item))
        batch = np.stack([np.frombuffer(item + bytes(width - len(item)), np.uint8), np.zeros(width, np.uint8)])
        tensor = module.InferInput("image", list(batch.shape), "UINT8")
        tensor.set_data_from_numpy(batch)
        client = module.InferenceServerClient(url)
        try:
            with pytest.raises(InferenceServerException) as refused:
                client.infer("image_preprocess", [tensor])
        finally:
            client.close()
        assert str(refused.value.status()) == {"grpc": "StatusCode.INVALID_ARGUMENT", "http": "400"}[protocol]
        assert "input `image` item 0" in refused.value.message() and message in refused.value.message()
    assert processes.stubs() == stubs


def test_transcribe_refuses_the_1_hz_wav_as_that_clips_input_error(transcribe_triton):
    """The route decodes on the server with PyAV, not through DALI: it checks the audio
    stream's rate before decoding, as the DALI backend checks the header."""
    import json

    bomb = payloads.wav(sample_rate=1, channels=1, bits=8, frames=20_000)
    started = time.monotonic()
    result = _send_audio(transcribe_triton.grpc_url, "grpc", "transcribe", bomb)
    assert time.monotonic() - started < 5.0
    (clip,) = [json.loads(item) for item in result.as_numpy("result")]
    assert clip["error"].startswith("clip 0: wav")
    assert "says 1 Hz; allowed: 4000 to 384000 Hz" in clip["error"]


def test_transcribe_answers_a_wav_ffmpeg_cannot_decode_as_that_clips_error(transcribe_triton):
    """Found by the 200-case long profile: a WAV of 0-bit samples opens in FFmpeg without
    a decoder, and the route answered 500 (AttributeError). The clip now gets its own error
    and the clip next to it is still transcribed."""
    import json

    zero_bits = payloads.wav(sample_rate=16_000, channels=1, bits=0, frames=100)
    tensor = grpcclient.InferInput("audio", [2], "BYTES")
    tensor.set_data_from_numpy(np.array([zero_bits, payloads.honest_wav(0.5)], dtype=np.object_))
    with grpcclient.InferenceServerClient(transcribe_triton.grpc_url) as client:
        result = client.infer("transcribe", [tensor], client_timeout=60)
    bad, good = [json.loads(item) for item in result.as_numpy("result")]
    assert bad["error"].startswith("clip 0: wav (audio: unknown codec): FFmpeg has no decoder for this audio")
    assert "error" not in good or not good["error"], good


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_an_empty_token_sequence_is_the_callers_mistake_not_a_server_fault(text_triton, protocol):
    """Found by the fuzzer: `text_classifier_fp32` with input_ids of shape [1, 0] failed
    inside ONNX Runtime's Reshape with a plain FAIL, which the backend answered INTERNAL."""
    module = grpcclient if protocol == "grpc" else httpclient
    url = text_triton.grpc_url if protocol == "grpc" else text_triton.http_url

    def tokens(length: int) -> list:
        inputs = []
        for name in ("input_ids", "attention_mask"):
            tensor = module.InferInput(name, [1, length], "INT64")
            tensor.set_data_from_numpy(np.ones((1, length), np.int64))
            inputs.append(tensor)
        return inputs

    client = module.InferenceServerClient(url)
    try:
        with pytest.raises(InferenceServerException) as refused:
            client.infer("text_classifier_fp32", tokens(0))
        assert str(refused.value.status()) == {"grpc": "StatusCode.INVALID_ARGUMENT", "http": "400"}[protocol]
        assert "input rejected: input `input_ids` shape [1, 0]" in refused.value.message()
        assert client.infer("text_classifier_fp32", tokens(5)).as_numpy("probabilities").shape[0] == 1
    finally:
        client.close()


def test_inputs_that_disagree_on_a_shared_axis_are_the_callers_mistake(text_triton):
    """Found by the fuzzer: input_ids [4, 64] with attention_mask [4, 7] failed inside ONNX
    Runtime's broadcast (a plain FAIL, answered 500). Both inputs carry the graph's named
    axis `sequence`; the backend now checks they agree before running the graph."""
    client = httpclient.InferenceServerClient(text_triton.http_url)
    inputs = []
    for name, length in (("input_ids", 64), ("attention_mask", 7)):
        tensor = httpclient.InferInput(name, [4, length], "INT64")
        tensor.set_data_from_numpy(np.ones((4, length), np.int64))
        inputs.append(tensor)
    try:
        with pytest.raises(InferenceServerException) as refused:
            client.infer("text_classifier_fp32", inputs)
    finally:
        client.close()
    assert str(refused.value.status()) == "400"
    assert "inputs disagree on axis `sequence` (`input_ids` 64, `attention_mask` 7)" in refused.value.message()
