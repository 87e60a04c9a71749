"""Session fixtures for the audio area (a pytest plugin registered in tests/conftest.py).

`speech_clip`: a few espeak-ng sentences (WAV, 22.05 kHz) with their text.
`audio_repository`: a tmp model repository with `audio_features` exported and a
stand-in `transcribe_standin` route that follows the transcription contract (see
STANDIN_CODE), so the client and CLI can be tested without the Whisper models.
`audio_triton`: a real tritonserver on that repository.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from marquee import render
from marquee.server.process import log_tail
from marquee.specs import DataType, LatencyBudget, ModelSpec, Precision, TensorSpec, Tolerance
from marquee.specs.audio import AUDIO_MODELS

TRANSCRIBE_STANDIN = ModelSpec(
    name="transcribe_standin",
    family="test",
    precision=Precision.FP32,
    backend="python",
    artifact="model.py",
    inputs=(TensorSpec("audio", DataType.BYTES, ("clips",)),),
    outputs=(TensorSpec("result", DataType.BYTES, ("clips",)),),
    max_batch_size=0,
    dynamic_batching=None,
    parameters={"features_model": "audio_features"},
    tolerance=Tolerance(atol=0.0),
    budget=LatencyBudget(perf_latency_p99_us=1_000_000),
)

# The contract's route, minus Whisper: it asks `audio_features` (through BLS, like the
# real route) for the clip's length and answers one segment per started 7 seconds, whose
# text names the segment ("segment 0", ...). A clip whose bytes start with b"FAIL" gets a
# per-clip error from the stand-in itself; undecodable audio gets the error
# `audio_features` reports. Deterministic, so tests can compare exact segments.
STANDIN_CODE = """
import json
import numpy as np
import triton_python_backend_utils as pb_utils

SEGMENT_S = 7.0


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.features = config["parameters"]["features_model"]["string_value"]

    def _one(self, data):
        if data.startswith(b"FAIL"):
            return {"error": "stand-in refuses clips starting with FAIL"}
        request = pb_utils.InferenceRequest(
            model_name=self.features,
            inputs=[pb_utils.Tensor("audio", np.frombuffer(data, np.uint8)[None])],
            requested_output_names=["num_samples"],
        )
        response = request.exec()
        if response.has_error():
            return {"error": response.error().message()}
        samples = int(pb_utils.get_output_tensor_by_name(response, "num_samples").as_numpy()[0, 0])
        duration = samples / 16000.0
        segments = []
        start = 0.0
        while start < duration:
            end = min(duration, start + SEGMENT_S)
            index = len(segments)
            segments.append({"start": round(start, 2), "end": round(end, 2), "text": f" segment {index}.",
                             "tokens": [50364 + index, 1000 + index]})
            start = end
        return {"duration_s": duration, "segments": segments, "model": "standin", "model_version": "1"}

    def execute(self, requests):
        responses = []
        for request in requests:
            clips = pb_utils.get_input_tensor_by_name(request, "audio").as_numpy()
            results = [json.dumps(self._one(bytes(clip))).encode() for clip in clips.reshape(-1)]
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("result", np.array(results, dtype=object))]))
        return responses
"""


@pytest.fixture(scope="session")
def speech_clip():
    from marquee.transcription import speech

    if not speech.espeak_available():
        pytest.skip("espeak-ng is not installed (bootstrap.sh installs it)")
    return speech.synthesize(" ".join(speech.SENTENCES[:3]))


@pytest.fixture(scope="session")
def audio_repository(tmp_path_factory, cache_root) -> Path:
    from export.audio import export_audio_features

    repository = tmp_path_factory.mktemp("audio_repository")
    render.write([*AUDIO_MODELS, TRANSCRIBE_STANDIN], repository)
    export_audio_features(repository)
    (repository / TRANSCRIBE_STANDIN.name / "1").mkdir(parents=True)
    (repository / TRANSCRIBE_STANDIN.name / "1" / "model.py").write_text(STANDIN_CODE)
    return repository


@pytest.fixture(scope="session")
def audio_triton(audio_repository, tmp_path_factory):
    from marquee.server import TritonServer, free_ports

    log_path = tmp_path_factory.mktemp("audio-triton-log") / "tritonserver.log"
    server = TritonServer(audio_repository, free_ports(), log_path=log_path).start(timeout=180)
    yield server
    server.stop()


@pytest.fixture
def audio_server_alive(audio_triton):
    """Use in a test to fail at once, with the server's log, if the test left the server dead."""
    yield audio_triton
    if not audio_triton.alive():
        pytest.fail(f"tritonserver died during the test; log:\n{log_tail(audio_triton.log_path)}")
