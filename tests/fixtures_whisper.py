"""Session fixtures for the whisper area (a pytest plugin registered in tests/conftest.py).

- `whisper_repository`: `audio_features` + the Whisper encoder/decoder (FP32, INT8) and
  both transcribe routes, exported once per session (about 50 s on two cores), plus a
  test-only route `transcribe_short_limit` whose duration limit is 5 s;
- `transcribe_triton`: a real tritonserver on it, warmed up;
- `whisper_torch`: the converted PyTorch model and its decoding rules (the reference);
- the same repository also serves Whisper base (multilingual) through
  `transcribe_base_int8`: exported into a cache kept between sessions
  (.marquee/test-cache/whisper-base; content-hash checked, so only a change re-exports,
  a few minutes) and linked in;
- `espeak_clips`: espeak-ng clips made once per session (`espeak_clips.get(text)`, `espeak_clips.long()`).
"""

from __future__ import annotations

import io
import json
import wave
from pathlib import Path

import numpy as np
import pytest

from marquee import render

SHORT_LIMIT_ROUTE = "transcribe_short_limit"
BASE_ROUTE = "transcribe_base_int8"
BASE_CACHE = Path(__file__).resolve().parent.parent / ".marquee" / "test-cache" / "whisper-base" / "model_repository"
SHORT_LIMIT_S = 5.0


def silence_wav(seconds: float, rate: int = 16_000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(np.zeros(int(seconds * rate), np.int16).tobytes())
    return buffer.getvalue()


def transcribe(
    client,
    clips: list[bytes],
    model: str = "transcribe",
    timeout: float = 300,
    surface: str | None = None,
    **options: str,
) -> list[dict]:
    """The route's parsed JSON, one dict per clip; `options`: the route's request
    parameters (mode, language, task)."""
    import tritonclient.grpc as grpcclient

    items = np.array(clips, dtype=np.object_)
    tensor = grpcclient.InferInput("audio", [len(items)], "BYTES")
    tensor.set_data_from_numpy(items)
    parameters = {key: value for key, value in {"surface": surface, **options}.items() if value} or None
    result = client.infer(model, [tensor], client_timeout=timeout, parameters=parameters)
    return [json.loads(item) for item in result.as_numpy("result")]


def _short_limit_route(repository: Path) -> None:
    from marquee.specs.whisper import TRANSCRIBE

    render.write_variant(repository, TRANSCRIBE, SHORT_LIMIT_ROUTE, max_duration_s=str(SHORT_LIMIT_S))


@pytest.fixture(scope="session")
def whisper_repository(cache_root) -> Path:
    from export.audio.pipeline import export_audio_features
    from export.vad import export_silero_vad
    from export.whisper.pipeline import export_whisper
    from marquee.specs.audio import AUDIO_MODELS
    from marquee.specs.vad import VAD_MODELS
    from marquee.specs.whisper import WHISPER_MODELS

    repository = cache_root / "whisper" / "model_repository"
    render.write([*AUDIO_MODELS, *VAD_MODELS, *WHISPER_MODELS], repository)
    export_audio_features(repository)
    export_silero_vad(repository)
    export_whisper(repository)
    _short_limit_route(repository)
    _link_whisper_base(repository)
    return repository


def _link_whisper_base(repository: Path) -> None:
    """Whisper base's INT8 route and models, exported once into BASE_CACHE, linked in."""
    from export.whisper.cached import link_from_cache
    from marquee.specs.whisper import BASE_VARIANT

    link_from_cache(repository, BASE_CACHE, BASE_VARIANT)


class SpeechClips:
    """espeak-ng clips, synthesized on first use and kept for the session."""

    def __init__(self):
        self._clips: dict[str, object] = {}

    def get(self, text: str, voice: str = "en-us"):
        from marquee.transcription import speech

        if (text, voice) not in self._clips:
            self._clips[(text, voice)] = speech.synthesize(text, voice=voice)
        return self._clips[(text, voice)]

    def long(self):
        from marquee.transcription import speech

        if "<long>" not in self._clips:
            self._clips["<long>"] = speech.long_clip(min_seconds=60)
        return self._clips["<long>"]


@pytest.fixture(scope="session")
def espeak_clips():
    from marquee.transcription import speech as speech_module

    if not speech_module.espeak_available():
        pytest.skip("espeak-ng is not installed (bootstrap.sh installs it)")
    return SpeechClips()


@pytest.fixture(scope="session")
def whisper_torch():
    """(transformers model converted from the CTranslate2 weights, decoding rules)."""
    from export.whisper.convert import load_whisper, suppress_settings
    from export.whisper.pipeline import default_source
    from export.whisper.reference import decoding_rules

    source = default_source()
    model, tokens = load_whisper(source)
    suppress, begin = suppress_settings(source, model)
    return model, decoding_rules(tokens, suppress, begin)


@pytest.fixture(scope="session")
def transcribe_triton(whisper_repository, tmp_path_factory, espeak_clips):
    import tritonclient.grpc as grpcclient

    from marquee.server import TritonServer, free_ports

    log_path = tmp_path_factory.mktemp("whisper-triton-log") / "tritonserver.log"
    server = TritonServer(whisper_repository, free_ports(), log_path=log_path).start(timeout=300)
    # The first calls pay for ONNX Runtime's and DALI's lazy initialisation.
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        for route in ("transcribe", "transcribe_int8", BASE_ROUTE):
            transcribe(client, [espeak_clips.get("Warm up the server.").wav], model=route)
    yield server
    server.stop()


@pytest.fixture
def transcribe_client(transcribe_triton):
    import tritonclient.grpc as grpcclient

    with grpcclient.InferenceServerClient(transcribe_triton.grpc_url) as client:
        yield client
    if not transcribe_triton.alive():
        from marquee.server.process import log_tail

        pytest.fail(f"tritonserver died during the test; log:\n{log_tail(transcribe_triton.log_path)}")
