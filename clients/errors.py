"""Translate tritonclient's exceptions into Marquee's own errors."""

from __future__ import annotations

from tritonclient.utils import InferenceServerException

from marquee.errors import (
    InferenceError,
    InferenceTimeoutError,
    ModelNotReadyError,
    ServerUnavailableError,
)


def translate(error: BaseException, model: str, url: str) -> InferenceError:
    if isinstance(error, InferenceServerException):
        status = str(error.status() or "")
        message = error.message() or str(error)
        lowered = message.lower()
        if "deadline" in status.lower() or "deadline exceeded" in lowered or "timed out" in lowered:
            return InferenceTimeoutError(f"{model} at {url}: request timed out ({message})")
        if "unavailable" in status.lower() or "failed to connect" in lowered or "connection refused" in lowered:
            return ServerUnavailableError(f"{model}: no Triton server reachable at {url} ({message})")
        if "not found" in lowered or "not ready" in lowered or "unknown model" in lowered:
            return ModelNotReadyError(f"{model} is not loaded or not ready at {url}: {message}")
        return InferenceError(f"{model} at {url}: {message}")
    if isinstance(error, TimeoutError):
        return InferenceTimeoutError(f"{model} at {url}: request timed out ({error})")
    if isinstance(error, OSError):
        return ServerUnavailableError(f"{model}: no Triton server reachable at {url} ({error})")
    return InferenceError(f"{model} at {url}: {error!r}")
