"""Translate tritonclient's exceptions into Marquee's own errors.

The server's status decides the class, so callers and retry policies can tell a
caller's mistake from a server fault:
- INVALID_ARGUMENT (gRPC) / 400 (HTTP) -> InputValidationError: fix the request, never retry;
- DEADLINE_EXCEEDED / timeouts          -> InferenceTimeoutError;
- UNAVAILABLE / connection failures     -> ServerUnavailableError;
- NOT_FOUND / unknown or unready model  -> ModelNotReadyError;
- RESOURCE_EXHAUSTED / 429 (the gateway), or a route's UNAVAILABLE quota refusal
                                        -> QuotaExceededError: retry after the wait;
- a restricted API without the admin key -> AdminKeyRequiredError (Triton 2.51 answers
  gRPC UNAVAILABLE "This protocol is restricted", HTTP 403);
- INTERNAL / 500 and anything else      -> ServerInternalError.
All but the first are server-side errors (InferenceError).
"""

from __future__ import annotations

import re

from tritonclient.utils import InferenceServerException

from marquee.errors import (
    AdminKeyRequiredError,
    InferenceError,
    InferenceTimeoutError,
    InputValidationError,
    ModelNotReadyError,
    QuotaExceededError,
    ServerInternalError,
    ServerUnavailableError,
)

_INVALID = {"StatusCode.INVALID_ARGUMENT", "400"}
_NOT_FOUND = {"StatusCode.NOT_FOUND", "404"}
_EXHAUSTED = {"StatusCode.RESOURCE_EXHAUSTED", "429"}
# What a route's quota refusal says (route_runtime.QUOTA_RETRY_HINT), followed by the wait.
_QUOTA_WAIT = re.compile(r"quota refusal, retry after (\d+) ms")


def translate(error: BaseException, model: str, url: str) -> InferenceError | InputValidationError:
    if isinstance(error, InferenceServerException):
        status = str(error.status() or "")
        message = error.message() or str(error)
        lowered = message.lower()
        if status == "403" or "protocol is restricted" in lowered:
            return AdminKeyRequiredError(f"{model} at {url}: needs the admin key (marquee-admin-key): {message}")
        quota_wait = _QUOTA_WAIT.search(message)
        if status in _EXHAUSTED or quota_wait:
            retry_after_s = int(quota_wait.group(1)) / 1000.0 if quota_wait else None
            return QuotaExceededError(f"{model} at {url}: over quota ({status}): {message}", retry_after_s)
        if status in _INVALID:
            return InputValidationError(f"{model} at {url} refused the request ({status}): {message}")
        if "deadline" in status.lower() or "deadline exceeded" in lowered or "timed out" in lowered:
            return InferenceTimeoutError(f"{model} at {url}: request timed out ({message})")
        if "unavailable" in status.lower() or "failed to connect" in lowered or "connection refused" in lowered:
            return ServerUnavailableError(f"{model}: no Triton server reachable at {url} ({message})")
        if status in _NOT_FOUND or "not found" in lowered or "not ready" in lowered or "unknown model" in lowered:
            return ModelNotReadyError(f"{model} is not loaded or not ready at {url}: {message}")
        return ServerInternalError(f"{model} at {url} ({status or 'no status'}): {message}")
    if isinstance(error, TimeoutError):
        return InferenceTimeoutError(f"{model} at {url}: request timed out ({error})")
    if isinstance(error, OSError):
        return ServerUnavailableError(f"{model}: no Triton server reachable at {url} ({error})")
    return ServerInternalError(f"{model} at {url}: {error!r}")
