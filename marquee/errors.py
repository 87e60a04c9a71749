"""Marquee's error hierarchy. Messages name the field, the value and what is allowed."""


class MarqueeError(Exception):
    """Base class of every error Marquee raises on purpose."""


class UnknownModelError(MarqueeError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ConfigDriftError(MarqueeError):
    """A committed `config.pbtxt` differs from what its spec renders."""


class CheckpointError(MarqueeError, FileNotFoundError):
    """A checkpoint is missing or is not in the format the exporter reads."""


class ExportValidationError(MarqueeError):
    """An exported artifact disagrees with its framework reference beyond tolerance."""


class ServerError(MarqueeError):
    """The Triton server could not be started, or died."""


class PerfAnalyzerUnavailableError(MarqueeError):
    """perf_analyzer cannot run on this host."""


class PerfAnalyzerFailedError(MarqueeError):
    """perf_analyzer ran but did not measure (unstable windows, server errors, bad arguments)."""


class InputValidationError(MarqueeError, ValueError):
    """The caller's mistake: the request does not match the model's spec (raised before
    sending), or the server refused it as invalid (INVALID_ARGUMENT / HTTP 400). Retrying
    the same request cannot succeed."""


class InferenceError(MarqueeError):
    """A server-side error: the server failed, is unreachable, timed out, or lacks the model."""


class ServerInternalError(InferenceError):
    """The server failed the request (INTERNAL / HTTP 500)."""


class AdminKeyRequiredError(InferenceError):
    """A restricted API (model repository, shared memory, logging, trace) was called without
    the right admin key: HTTP 403, or gRPC UNAVAILABLE "This protocol is restricted"."""


class ModelNotReadyError(InferenceError):
    pass


class InferenceTimeoutError(InferenceError, TimeoutError):
    pass


class ServerUnavailableError(InferenceError, ConnectionError):
    pass


class QuotaExceededError(InferenceError):
    """The request's surface is over its quota (policies/surfaces.yaml): the gateway's 429 /
    RESOURCE_EXHAUSTED, or a route's UNAVAILABLE quota refusal. Retry after `retry_after_s`."""

    def __init__(self, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s
