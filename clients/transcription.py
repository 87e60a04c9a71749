"""Typed clients for the `transcribe` route: audio files in, timed segments out.

    with TranscriptionClient("localhost:8001") as client:
        for segment in client.transcribe("interview.flac"):
            print(f"{segment.start:7.2f} {segment.end:7.2f} {segment.text}")

The route takes encoded files (WAV, FLAC, OGG, MP3, M4A/AAC, Opus/WebM, or the audio
track of MP4, MOV and MKV files; the server decodes and resamples) and answers one JSON
object per clip (see the contract in marquee/specs/whisper.py): {"duration_s", "segments": [{"start", "end", "text",
"tokens"}], "model", "model_version"} or {"error": "..."} for a clip the route could not
transcribe; other clips of the same request are still transcribed.

- `transcribe(path_or_bytes) -> list[Segment]` raises `TranscriptionError` (naming the
  file) when the route reports an error for that clip;
- `transcript(path_or_bytes) -> Transcript`: the same with duration and model version;
- `transcribe_many(paths)` / `iter_transcripts(paths)`: several clips per request, one
  `Transcript` per clip in input order; a failed clip is a `Transcript` whose `error` is
  set (call `.raise_for_error()`), so one bad file does not lose the others.
Request-level failures (server down, timeout, unknown model) raise Marquee's errors
(see clients.base).

Options (constructor, sent as request parameters): `mode` ("batched": VAD chunks decoded
in batches, the route's default; "sequential": Whisper's 30 s seek), and for multilingual
routes (`transcribe_base`, `transcribe_base_int8`) `language` (a Whisper code such as
"es", or None to identify it) and `task` ("transcribe" in the spoken language, or
"translate" into English). Multilingual results carry `Transcript.language` (the clip's)
and `Segment.language` (the chunk's).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clients.base import AsyncModelClient, ModelClient, Protocol
from clients.files import as_list, bytes_tensor, load_file, result_object
from marquee.errors import InferenceError, InputValidationError
from marquee.specs.base import DataType, LatencyBudget, ModelSpec, Precision, TensorSpec, Tolerance

__all__ = [
    "AsyncTranscriptionClient",
    "Segment",
    "Transcript",
    "TranscriptionClient",
    "TranscriptionError",
    "route_spec",
]

DEFAULT_MODEL = "transcribe"
DEFAULT_TIMEOUT_S = 3600.0  # hours of audio on a CPU host take minutes
DEFAULT_CLIPS_PER_REQUEST = 4
TASKS = ("transcribe", "translate")
MODES = ("batched", "sequential")

AudioSource = str | Path | bytes


class TranscriptionError(InferenceError):
    """The route could not transcribe one clip; the message names the clip and says why."""


def route_spec(model: str = DEFAULT_MODEL) -> ModelSpec:
    """The route's tensors as the contract fixes them (any route name: transcribe_int8, ...)."""
    return ModelSpec(
        name=model,
        family="transcription",
        precision=Precision.FP32,
        backend="python",
        artifact="model.py",
        inputs=(TensorSpec("audio", DataType.BYTES, ("clips",), description="encoded audio file, one per clip"),),
        outputs=(TensorSpec("result", DataType.BYTES, ("clips",), description="JSON per clip"),),
        max_batch_size=0,
        dynamic_batching=None,
        tolerance=Tolerance(atol=0.0),
        budget=LatencyBudget(perf_latency_p99_us=60_000_000),
    )


@dataclass(frozen=True)
class Segment:
    start: float  # seconds from the start of the clip
    end: float
    text: str
    tokens: tuple[int, ...] = ()
    language: str | None = None  # multilingual routes: the language of the segment's chunk


@dataclass(frozen=True)
class Transcript:
    source: str  # the file name, or "<bytes #i>" for in-memory clips
    segments: tuple[Segment, ...] = ()
    duration_s: float | None = None
    model: str | None = None
    model_version: str | None = None
    language: str | None = None  # multilingual routes: the clip's (most of its audio) language
    task: str | None = None
    error: str | None = None
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def text(self) -> str:
        return "".join(segment.text for segment in self.segments).strip()

    def raise_for_error(self) -> Transcript:
        if self.error is not None:
            raise TranscriptionError(f"{self.source}: {self.error}")
        return self

    @classmethod
    def from_wire(cls, route: str, source: str, payload: bytes | str) -> Transcript:
        parsed = result_object(route, source, payload)
        if "error" in parsed:
            return cls(source=source, error=str(parsed["error"]), raw=parsed)
        try:
            segments = tuple(
                Segment(
                    float(s["start"]),
                    float(s["end"]),
                    str(s["text"]),
                    tuple(int(t) for t in s.get("tokens", ())),
                    s.get("language"),
                )
                for s in parsed["segments"]
            )
            duration = float(parsed["duration_s"])
        except (KeyError, TypeError, ValueError) as error:
            raise InferenceError(
                f"{route}: result for {source} breaks the contract ({type(error).__name__}: {error}); "
                "expected {duration_s, segments: [{start, end, text, tokens}], model, model_version}"
            ) from None
        return cls(
            source=source,
            segments=segments,
            duration_s=duration,
            model=parsed.get("model"),
            model_version=None if parsed.get("model_version") is None else str(parsed["model_version"]),
            language=parsed.get("language"),
            task=parsed.get("task"),
            raw=parsed,
        )


def _load(item: AudioSource, index: int) -> tuple[str, bytes]:
    """(name for messages, encoded bytes)."""
    return load_file(item, index, "transcribe", "audio")


def _as_list(sources: Iterable[AudioSource] | AudioSource) -> list[AudioSource]:
    return as_list(sources, "transcribe_many")


def _check_clips_per_request(value: int) -> None:
    if value < 1:
        raise InputValidationError(f"clips_per_request={value}; must be >= 1")


def request_options(mode: str | None, language: str | None, task: str) -> dict | None:
    """The route's request parameters, checked here so a typo fails before any upload."""
    if mode is not None and mode not in MODES:
        raise InputValidationError(f"mode={mode!r}; allowed: {', '.join(MODES)}")
    if task not in TASKS:
        raise InputValidationError(f"task={task!r}; allowed: {', '.join(TASKS)}")
    if language is not None and not (language.isascii() and language.isalpha() and 2 <= len(language) <= 5):
        raise InputValidationError(f"language={language!r}; expected a Whisper language code such as 'es', or None")
    options = {"mode": mode, "language": language, "task": None if task == "transcribe" else task}
    return {key: value for key, value in options.items() if value is not None} or None


class _TranscriptionMixin:
    model: str

    def _parse(self, names: list[str], outputs: dict[str, np.ndarray]) -> list[Transcript]:
        results = outputs["result"].reshape(-1)
        if len(results) != len(names):
            raise InferenceError(f"{self.model}: sent {len(names)} clips, got {len(results)} results")
        return [Transcript.from_wire(self.model, name, payload) for name, payload in zip(names, results, strict=True)]


class TranscriptionClient(_TranscriptionMixin):
    """Blocking client for a transcription route (gRPC by default)."""

    def __init__(
        self,
        url: str | None = None,
        model: str = DEFAULT_MODEL,
        protocol: Protocol = "grpc",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        priority: int = 0,
        tls_ca: str | Path | None = None,
        surface: str | None = None,
        mode: str | None = None,
        language: str | None = None,
        task: str = "transcribe",
    ):
        self.model = model
        self.options = request_options(mode, language, task)
        self._client = ModelClient(
            route_spec(model),
            url=url,
            protocol=protocol,
            timeout_s=timeout_s,
            priority=priority,
            tls_ca=tls_ca,
            surface=surface,
        )
        self.url = self._client.url

    def transcript(self, source: AudioSource) -> Transcript:
        name, data = _load(source, 0)
        (result,) = self._parse([name], self._client.infer(self.options, audio=bytes_tensor([data])))
        return result.raise_for_error()

    def transcribe(self, source: AudioSource) -> list[Segment]:
        return list(self.transcript(source).segments)

    def iter_transcripts(
        self, sources: Iterable[AudioSource], clips_per_request: int = DEFAULT_CLIPS_PER_REQUEST
    ) -> Iterator[Transcript]:
        """Transcripts in input order, a request's worth at a time (files are read lazily)."""
        _check_clips_per_request(clips_per_request)
        items = _as_list(sources)
        for start in range(0, len(items), clips_per_request):
            loaded = [_load(item, start + i) for i, item in enumerate(items[start : start + clips_per_request])]
            outputs = self._client.infer(self.options, audio=bytes_tensor([data for _, data in loaded]))
            yield from self._parse([name for name, _ in loaded], outputs)

    def transcribe_many(
        self, sources: Iterable[AudioSource], clips_per_request: int = DEFAULT_CLIPS_PER_REQUEST
    ) -> list[Transcript]:
        return list(self.iter_transcripts(sources, clips_per_request))

    def is_ready(self) -> bool:
        return self._client.is_ready()

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> TranscriptionClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncTranscriptionClient(_TranscriptionMixin):
    """asyncio client; `transcribe_many` keeps up to `max_in_flight` requests open."""

    def __init__(
        self,
        url: str | None = None,
        model: str = DEFAULT_MODEL,
        protocol: Protocol = "grpc",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        priority: int = 0,
        tls_ca: str | Path | None = None,
        surface: str | None = None,
        mode: str | None = None,
        language: str | None = None,
        task: str = "transcribe",
    ):
        self.model = model
        self.options = request_options(mode, language, task)
        self._client = AsyncModelClient(
            route_spec(model),
            url=url,
            protocol=protocol,
            timeout_s=timeout_s,
            priority=priority,
            tls_ca=tls_ca,
            surface=surface,
        )
        self.url = self._client.url

    async def _request(self, loaded: list[tuple[str, bytes]]) -> list[Transcript]:
        outputs = await self._client.infer(self.options, audio=bytes_tensor([data for _, data in loaded]))
        return self._parse([name for name, _ in loaded], outputs)

    async def transcript(self, source: AudioSource) -> Transcript:
        (result,) = await self._request([_load(source, 0)])
        return result.raise_for_error()

    async def transcribe(self, source: AudioSource) -> list[Segment]:
        return list((await self.transcript(source)).segments)

    async def transcribe_many(
        self,
        sources: Iterable[AudioSource],
        clips_per_request: int = DEFAULT_CLIPS_PER_REQUEST,
        max_in_flight: int = 2,
    ) -> list[Transcript]:
        _check_clips_per_request(clips_per_request)
        if max_in_flight < 1:
            raise InputValidationError(f"max_in_flight={max_in_flight}; must be >= 1")
        items = _as_list(sources)
        gate = asyncio.Semaphore(max_in_flight)

        async def one_request(start: int) -> list[Transcript]:
            async with gate:
                chunk = items[start : start + clips_per_request]
                return await self._request([_load(item, start + i) for i, item in enumerate(chunk)])

        chunks = await asyncio.gather(*(one_request(s) for s in range(0, len(items), clips_per_request)))
        return [transcript for chunk in chunks for transcript in chunk]

    async def is_ready(self) -> bool:
        return await self._client.is_ready()

    async def close(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> AsyncTranscriptionClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
