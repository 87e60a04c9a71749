"""Typed client for the `analyze_video` route: video files in, shot lists out.

    with VideoClient("localhost:8001") as client:
        analysis = client.analyze("dailies/take_03.mp4")
        for shot in analysis.shots:
            print(shot.start_timecode, shot.transition_in, shot.keyframe.moderation)
        print([t.time_s for t in analysis.thumbnails])

The route takes encoded files (H.264/HEVC/MPEG-4/AV1 in MP4/MKV/MOV, VP8/VP9 in WebM,
MJPEG in AVI; at most 30 minutes and DCI 4K by default) and answers one JSON object per
file (see marquee/routes/analyze_video/model.py): the video's header facts, its
transitions, its shots with their keyframes (quality, ImageNet tags, an embedding for
near-duplicate search, moderation decision, burned-in text, MTCNN faces, a small JPEG),
and the top thumbnails, all safe (a visible face raises a thumbnail's score). A file the route cannot analyse
comes back with `error` set and `error_kind` "input" (the file is unusable: do not
retry) or "model" (a model failed or ran late: a retry may succeed).

- `analyze(path_or_bytes) -> VideoAnalysis` raises `VideoAnalysisError` (naming the file)
  when the route reports an error for it;
- `analyze_many(paths)` / `iter_analyses(paths)`: one `VideoAnalysis` per file in input
  order; a failed file has `error` set (call `.raise_for_error()`), so one bad file does
  not lose the others.
Request-level failures (server down, timeout, unknown model) raise Marquee's errors
(see clients.base).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clients.base import ModelClient, Protocol
from clients.files import FileSource, as_list, bytes_tensor, load_file, result_object
from marquee.errors import InferenceError, InputValidationError
from marquee.specs.vision import ANALYZE_VIDEO, LIMITS

__all__ = [
    "Face",
    "Keyframe",
    "Thumbnail",
    "Transition",
    "VideoAnalysis",
    "VideoAnalysisError",
    "VideoClient",
    "VideoShot",
]

DEFAULT_TIMEOUT_S = 3600.0  # a 30-minute file takes minutes on a CPU host


class VideoAnalysisError(InferenceError):
    """The route could not analyse one file; the message names the file and says why."""


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in the source video's pixels
    probability: float  # MTCNN O-Net's


@dataclass(frozen=True)
class Keyframe:
    frame: int
    time_s: float
    timecode: str
    sharpness: float
    exposure: float
    quality: float
    moderation: str | None  # moderate_image's decision: allow | review | block | error; None: not judged
    labels: dict[str, float] = field(default_factory=dict)
    text: tuple[str, ...] = ()
    tags: tuple[tuple[str, float], ...] = ()  # (ImageNet class, probability), best first
    embedding: np.ndarray | None = None  # L2-normalised, 1280 floats: cosine = dot product
    faces: tuple[Face, ...] | None = None  # largest first; None: not searched (see raw["faces_unsearched"])
    jpeg: bytes = b""

    def image(self) -> np.ndarray:
        """The keyframe as an RGB array (decoded from the small JPEG the route sends)."""
        import cv2

        bgr = cv2.imdecode(np.frombuffer(self.jpeg, np.uint8), cv2.IMREAD_COLOR)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@dataclass(frozen=True)
class VideoShot:
    index: int
    start_frame: int
    end_frame: int
    start_s: float
    end_s: float
    start_timecode: str
    transition_in: str  # start | cut | dissolve
    keyframe: Keyframe | None
    near_duplicate_of: int | None = None  # an earlier shot whose keyframe embeds alike


@dataclass(frozen=True)
class Transition:
    kind: str  # cut | dissolve
    start_frame: int
    end_frame: int
    time_s: float
    probability: float


@dataclass(frozen=True)
class Thumbnail:
    shot: int
    frame: int
    time_s: float
    score: float


@dataclass(frozen=True)
class VideoAnalysis:
    source: str
    shots: tuple[VideoShot, ...] = ()
    transitions: tuple[Transition, ...] = ()
    thumbnails: tuple[Thumbnail, ...] = ()
    video: dict = field(default_factory=dict)  # container, codec, width, height, fps, duration_s, decoder, frames
    thumbnails_unjudged: str | None = None
    error: str | None = None
    error_kind: str | None = None
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def duration_s(self) -> float:
        return float(self.video.get("duration_s", 0.0))

    def raise_for_error(self) -> VideoAnalysis:
        if self.error is not None:
            raise VideoAnalysisError(f"{self.source}: {self.error}")
        return self

    @classmethod
    def from_wire(cls, route: str, source: str, payload: bytes | str) -> VideoAnalysis:
        parsed = result_object(route, source, payload)
        if "error" in parsed:
            return cls(source, error=str(parsed["error"]), error_kind=parsed.get("error_kind"), raw=parsed)
        try:
            return cls(
                source=source,
                shots=tuple(_shot(s) for s in parsed["shots"]),
                transitions=tuple(Transition(**_pick(t, Transition)) for t in parsed["transitions"]),
                thumbnails=tuple(Thumbnail(**t) for t in parsed["thumbnails"]),
                video=dict(parsed["video"]),
                thumbnails_unjudged=parsed.get("thumbnails_unjudged"),
                raw=parsed,
            )
        except (KeyError, TypeError, ValueError) as error:
            raise InferenceError(
                f"{route}: result for {source} breaks the contract ({type(error).__name__}: {error}); "
                "expected {video, transitions, shots: [{..., keyframe}], thumbnails}"
            ) from None


def _pick(document: dict, kind: type) -> dict:
    return {name: document[name] for name in kind.__dataclass_fields__}


def _shot(document: dict) -> VideoShot:
    keyframe = document.get("keyframe")
    if keyframe is not None:
        values = _pick({**keyframe, "jpeg": b"", "tags": (), "embedding": None, "faces": None}, Keyframe)
        values["text"] = tuple(keyframe.get("text") or ())
        values["labels"] = dict(keyframe.get("labels") or {})
        values["tags"] = tuple((t["label"], float(t["probability"])) for t in keyframe.get("tags") or ())
        embedding = keyframe.get("embedding")
        values["embedding"] = None if embedding is None else np.asarray(embedding, np.float32)
        faces = keyframe.get("faces")
        values["faces"] = (
            None if faces is None else tuple(Face(tuple(f["box"]), float(f["probability"])) for f in faces)
        )
        values["jpeg"] = base64.b64decode(keyframe.get("jpeg_base64") or "")
        keyframe = Keyframe(**values)
    values = _pick({"near_duplicate_of": None, **document, "keyframe": None}, VideoShot)
    return VideoShot(**{**values, "keyframe": keyframe})


class VideoClient:
    """Blocking client for the analyze_video route (gRPC by default)."""

    def __init__(
        self,
        url: str | None = None,
        model: str = ANALYZE_VIDEO.name,
        protocol: Protocol = "grpc",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        priority: int = 0,
        tls_ca: str | Path | None = None,
        surface: str | None = None,
    ):
        self.model = model
        spec = ANALYZE_VIDEO if model == ANALYZE_VIDEO.name else _renamed(model)
        self._client = ModelClient(
            spec, url=url, protocol=protocol, timeout_s=timeout_s, priority=priority, tls_ca=tls_ca, surface=surface
        )
        self.url = self._client.url

    def analyze(self, source: FileSource) -> VideoAnalysis:
        return self.analyze_many([source], files_per_request=1)[0].raise_for_error()

    def iter_analyses(self, sources: Iterable[FileSource], files_per_request: int = 1) -> Iterator[VideoAnalysis]:
        """Analyses in input order, a request's worth at a time (files are read lazily)."""
        if not 1 <= files_per_request <= LIMITS.max_files:
            raise InputValidationError(f"files_per_request={files_per_request}; allowed: 1 to {LIMITS.max_files}")
        items = as_list(sources, "analyze_many")
        for start in range(0, len(items), files_per_request):
            chunk = items[start : start + files_per_request]
            loaded = [load_file(item, start + i, self.model, "video") for i, item in enumerate(chunk)]
            outputs = self._client.infer(video=bytes_tensor([data for _, data in loaded]))
            results = outputs["result"].reshape(-1)
            if len(results) != len(loaded):
                raise InferenceError(f"{self.model}: sent {len(loaded)} files, got {len(results)} results")
            for (name, _), payload in zip(loaded, results, strict=True):
                yield VideoAnalysis.from_wire(self.model, name, payload)

    def analyze_many(self, sources: Iterable[FileSource], files_per_request: int = 1) -> list[VideoAnalysis]:
        return list(self.iter_analyses(sources, files_per_request))

    def is_ready(self) -> bool:
        return self._client.is_ready()

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> VideoClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _renamed(model: str):
    """The route's contract under another served name (a variant of the route)."""
    import dataclasses

    return dataclasses.replace(ANALYZE_VIDEO, name=model)
