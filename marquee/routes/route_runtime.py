"""What every Marquee route (a Triton Python BLS model) shares: parameters, errors,
downstream calls with deadlines, stage timing, and the composed models' readiness.

The installer copies this file into each route's version folder next to its `model.py`
(see `marquee/routes/manifest.py`), so a route needs nothing from the marquee package at
serving time and runs the same in the NGC container.

Error codes follow Triton's meaning of them:
- a caller's mistake raises `RouteInputError` -> INVALID_ARG (gRPC INVALID_ARGUMENT,
  HTTP 400); clients must not retry it;
- a surface over its quota raises `QuotaExceeded` -> UNAVAILABLE (gRPC UNAVAILABLE,
  HTTP 503; the gateway in front answers 429 / RESOURCE_EXHAUSTED before it gets here),
  with the wait in the message; clients may retry after it;
- anything else that escapes a route is a server fault -> INTERNAL (HTTP 500), logged with
  its traceback, and the instance keeps serving the next request.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

import numpy as np

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # imported outside Triton by unit tests of the pure parts
    pb_utils = None

_REQUIRED = object()
# Words clients look for in an UNAVAILABLE message to tell a quota refusal (retry after the
# wait) from a server that is down (clients/errors.py).
QUOTA_RETRY_HINT = "quota refusal, retry after"
# A surface may spend this many seconds of its quota at once (a token bucket's depth), so
# a page's burst of parallel calls is not refused while the average rate holds.
QUOTA_BURST_S = 1.0
# How often a route asks Triton whether the models it composes are loaded.
DEPENDENCY_RECHECK_S = 5.0


class RouteInputError(ValueError):
    """The caller's request is malformed: INVALID_ARG, with a message naming the field,
    the value and what is allowed."""


class QuotaExceeded(Exception):
    """A surface sent more requests than its quota allows: UNAVAILABLE, retryable."""

    def __init__(self, surface: str, quota_rps: float, retry_after_s: float):
        super().__init__(
            f"surface {surface!r} is over its quota of {quota_rps:g} requests/s "
            f"(policies/surfaces.yaml); {QUOTA_RETRY_HINT} {retry_after_s * 1000:.0f} ms"
        )
        self.surface = surface


class RouteConfigError(ValueError):
    """A route's config.pbtxt parameters are missing or malformed (a deployment mistake)."""


class StageFailed(Exception):
    """A downstream model failed, ran over its deadline, or is not loaded.

    Routes degrade (recommend) or turn it into per-item errors (moderation,
    transcription); it never reaches the caller as a request error."""

    def __init__(self, model: str, reason: str, invalid_input: bool = False):
        super().__init__(f"{model} {reason}")
        self.model = model
        self.reason = reason
        # The downstream model answered INVALID_ARG: what the route passed on from the
        # caller (an image's bytes, say) is unusable, so retrying cannot help.
        self.invalid_input = invalid_input


# -- parameters -------------------------------------------------------------------


def return_large_frees_to_os(threshold_bytes: int = 4 << 20) -> bool:
    """Make glibc give every freed block over `threshold_bytes` back to the OS at once.

    By default glibc raises its mmap threshold to the size of the largest block freed (up
    to 32 MB), after which tens-of-MB arrays live in per-thread heaps it rarely returns:
    the transcription route, which handles Whisper's cross-attention tensors (18 MB a
    window) from worker threads, kept 700-1,000 MB of them after every request, and its
    peak on a 10-minute file fell from 1.3-1.4 GB to 0.9-1.0 GB with this call. Returns
    False where the C library is not glibc (nothing changes there)."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8  # <malloc.h>
    # Worker threads each get a heap of their own by default (8 per core); two share less.
    mallopt(m_arena_max, 2)
    # A fixed mmap threshold also fixes the trim threshold at 128 kB: heaps would shrink
    # and regrow (page faults) around every step's small arrays. Keep 64 MB of slack.
    mallopt(m_trim_threshold, 64 << 20)
    return bool(mallopt(m_mmap_threshold, threshold_bytes))


class RouteParameters:
    """The `parameters` of a route's config, read with types and clear errors."""

    def __init__(self, model_config: dict, folder: str = ""):
        self.route = model_config["name"]
        self.folder = folder  # the version folder being loaded
        self._config = model_config
        self._values = {k: v["string_value"] for k, v in model_config.get("parameters", {}).items()}

    @classmethod
    def from_args(cls, args: dict) -> RouteParameters:
        """From `initialize`'s args; a route reads only files of its own version folder."""
        return cls(json.loads(args["model_config"]), version_dir(args))

    def file(self, name: str, default: object = _REQUIRED) -> str:
        """The path of the version-folder file that parameter `name` names."""
        return os.path.join(self.folder, self.text(name, default))

    def text(self, name: str, default: object = _REQUIRED) -> str:
        if name in self._values:
            return self._values[name]
        if default is _REQUIRED:
            raise RouteConfigError(f"{self.route}: config parameter `{name}` is missing; known: {sorted(self._values)}")
        return default  # type: ignore[return-value]

    def integer(self, name: str, default: object = _REQUIRED, minimum: int | None = None) -> int:
        return self._number(name, default, int, minimum)

    def number(self, name: str, default: object = _REQUIRED, minimum: float | None = None) -> float:
        return self._number(name, default, float, minimum)

    def flag(self, name: str, default: bool) -> bool:
        value = self.text(name, "true" if default else "false").strip().lower()
        if value not in ("true", "false"):
            raise RouteConfigError(f"{self.route}: config parameter `{name}`={value!r}; allowed: true, false")
        return value == "true"

    def instance_count(self) -> int:
        """How many instances of this model Triton runs (all instance groups together)."""
        groups = self._config.get("instance_group") or [{}]
        return max(1, sum(int(group.get("count", 1)) for group in groups))

    def composed_models(self) -> list[str]:
        """The models this route cannot do its job without (the spec's `composes`)."""
        keys = [key for key in self.text("composes", "").split(",") if key]
        return [self.text(key) for key in keys]

    def budget_s(self, stage: str) -> float:
        """The deadline of one stage, rendered from the route's spec as `<stage>_budget_ms`."""
        return self.number(f"{stage}_budget_ms", minimum=0.0) / 1000.0

    def _number(self, name, default, kind, minimum):
        raw = self.text(name, default)
        if raw is default and default is not _REQUIRED:
            return default
        try:
            value = kind(raw)
        except (TypeError, ValueError):
            raise RouteConfigError(
                f"{self.route}: config parameter `{name}`={raw!r} is not {'an integer' if kind is int else 'a number'}"
            ) from None
        if minimum is not None and value < minimum:
            raise RouteConfigError(f"{self.route}: config parameter `{name}`={value}; must be >= {minimum}")
        return value


def version_dir(args: dict) -> str:
    """The folder of the version being loaded; a route reads only its own files."""
    return os.path.join(args["model_repository"], args["model_version"])


def request_parameters(request) -> dict:
    """The request's parameters (KServe v2 `parameters`) as a dict."""
    raw = request.parameters() or "{}"
    try:
        parameters = json.loads(raw)
    except json.JSONDecodeError:
        raise RouteInputError(f"request parameters are not a JSON object: {raw[:100]!r}") from None
    if not isinstance(parameters, dict):
        raise RouteInputError(f"request parameters must be a JSON object, got {type(parameters).__name__}")
    return parameters


def input_array(request, name: str, description: str) -> np.ndarray:
    """The named input as numpy; a missing one is the caller's mistake."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        raise RouteInputError(f"missing input `{name}` ({description})")
    return tensor.as_numpy()


def byte_items(request, name: str, unit: str, limit: int, limit_name: str) -> list[bytes]:
    """A BYTES [n] input (files, images) as a list of bytes, 1 to `limit` of them; anything
    else is the caller's mistake, named with the route parameter that sets the limit."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    items = tensor.as_numpy() if tensor is not None else None
    if items is None or items.dtype != np.object_ or items.ndim != 1:
        shape = None if items is None else list(items.shape)
        raise RouteInputError(f"input `{name}` must be BYTES [{unit}], got shape {shape}")
    if not 1 <= len(items) <= limit:
        raise RouteInputError(f"input `{name}` has {len(items)} {unit}; allowed 1 to {limit} ({limit_name})")
    return [bytes(item) for item in items]


# -- responses --------------------------------------------------------------------


def input_error_response(message: str):
    return pb_utils.InferenceResponse(
        output_tensors=[], error=pb_utils.TritonError(message, pb_utils.TritonError.INVALID_ARG)
    )


def server_error_response(message: str):
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))


def quota_refusal_response(message: str):
    return pb_utils.InferenceResponse(
        output_tensors=[], error=pb_utils.TritonError(message, pb_utils.TritonError.UNAVAILABLE)
    )


class RouteCall:
    """One request as a route handles it: its surface, its stage clock, and why it was
    degraded, if it was (`degrade(stage, message)`); `answer_each` records the metrics."""

    def __init__(self, surface: str):
        self.surface = surface
        self.clock = StageClock()
        self.degraded: list[tuple[str, str]] = []  # (bounded reason label, message)
        # The experiment cohort, for routes that run experiments (see RouteObserver's `cohorts`).
        self.cohort: str | None = None

    def degrade(self, reason: str, message: str) -> str:
        self.degraded.append((reason, message))
        return message


async def answer_each(
    requests: list, answer: Callable[[object, RouteCall], Awaitable], route: str, observer: RouteObserver | None = None
) -> list:
    """Answer every request of an `execute` call concurrently, each with its own outcome:
    a RouteInputError becomes INVALID_ARG, a QuotaExceeded UNAVAILABLE, any other
    exception INTERNAL (and a log line with its traceback); the other requests are
    unaffected. With an observer, each request's surface is read (and checked) and
    admitted under its quota first, and its outcome and timings recorded."""

    async def one(request):
        call, outcome, reason = None, "error", "internal"
        try:
            call = RouteCall(observer.surface_of(request) if observer else "")
            if observer:
                observer.admit(call.surface)
            response = await answer(request, call)
            outcome, reason = ("degraded", call.degraded[0][0]) if call.degraded else ("ok", "")
            return response
        except RouteInputError as error:
            reason = "input"
            return input_error_response(f"{route}: {error}")
        except QuotaExceeded as refusal:
            outcome, reason = "refused", "quota"
            return quota_refusal_response(f"{route}: {refusal}")
        except Exception as error:  # noqa: BLE001 - a fault must fail this request only
            pb_utils.Logger.log_error(f"{route}: internal error: {error!r}\n{traceback.format_exc()}")
            return server_error_response(f"{route}: internal error: {type(error).__name__}: {error}")
        finally:
            if observer:
                observer.record(call, outcome, reason)

    return list(await asyncio.gather(*(one(request) for request in requests)))


# -- surfaces and metrics -------------------------------------------------------------

# Seconds; from a 1 ms page to a 2-minute transcription request.
DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0]
INVALID_SURFACE = "invalid"  # the one label value for requests naming an unknown surface
# The header that names a request's surface at the gateway (surfaces.SURFACE_HEADER: the
# route has no marquee package to import it from, and a unit test keeps the two equal).
SURFACE_HEADER = "marquee-surface"


class LabelledCounter:
    """A counter family on Triton's /metrics whose series are made on first use. The
    caller keeps every label's values bounded (names from a file or a fixed list)."""

    def __init__(self, name: str, description: str, route: str, labels: tuple[str, ...]):
        self.route = route
        self.labels = labels
        # Keep the family referenced: Triton refuses metrics whose family was collected.
        self.family = pb_utils.MetricFamily(name=name, description=description, kind=pb_utils.MetricFamily.COUNTER)
        self._series: dict[tuple, object] = {}

    def add(self, amount: float, **labels: str) -> None:
        key = tuple(labels[name] for name in self.labels)
        if key not in self._series:
            self._series[key] = self.family.Metric(labels={"route": self.route, **labels})
        self._series[key].increment(amount)


def moderation_decisions_counter(route: str) -> LabelledCounter:
    """Both moderation routes count decisions the same way (category bounded by the policy)."""
    return LabelledCounter(
        "marquee_moderation_decisions_total",
        "moderation decisions by surface, category (policy category, image label, error kind) and decision",
        route,
        ("surface", "category", "decision"),
    )


class RouteObserver:
    """A route's metrics on Triton's /metrics, labelled by route, surface and stage.

    Label values are bounded by construction: `surface` by the surfaces file (plus
    "invalid"), `stage` by the route's own stage names, `outcome` by ok / degraded /
    error, and `reason` by the route's fixed reason names (a stage, "dependency", or an
    error kind). No label ever carries a user id, an item id or free text.

    `marquee_route_compute_seconds_total` is the wall time a route instance spent on the
    requests of a surface: the basis for splitting an instance's cost between surfaces
    (an instance handles one batch of requests at a time, so its busy seconds are what a
    surface consumed of it). Downstream models report their own time in Triton's
    `nv_inference_compute_*` series, per model.

    A route that runs experiments names its cohorts (`cohorts`, the first one being the
    value for "no cohort"): every series then carries a `cohort` label, bounded by that
    tuple. Other routes' series are unchanged. `on_record(call, outcome, seconds)` is
    called after each request is counted (a route's guardrails watch outcomes there).
    """

    def __init__(
        self,
        route: str,
        surfaces,
        stages: tuple[str, ...],
        cohorts: tuple[str, ...] = (),
        on_record: Callable[[RouteCall, str, float], None] | None = None,
        instances: int = 1,
        clock=time.monotonic,
    ):
        self.route = route
        self.surfaces = surfaces
        self.stages = stages
        self.cohorts = cohorts
        self.on_record = on_record
        self.quotas = self.quota_buckets(surfaces, instances, clock)
        # Keep the families referenced: Triton refuses metrics whose family was collected.
        self.families = {
            "requests": pb_utils.MetricFamily(
                name="marquee_route_requests_total",
                description="route requests by surface and outcome (ok, degraded, error) with its reason",
                kind=pb_utils.MetricFamily.COUNTER,
            ),
            "duration": pb_utils.MetricFamily(
                name="marquee_route_request_duration_seconds",
                description="time from a route request's arrival to its response, by surface",
                kind=pb_utils.MetricFamily.HISTOGRAM,
            ),
            "stage": pb_utils.MetricFamily(
                name="marquee_route_stage_duration_seconds",
                description="time a route spent in each stage of a request, by surface",
                kind=pb_utils.MetricFamily.HISTOGRAM,
            ),
            "compute": pb_utils.MetricFamily(
                name="marquee_route_compute_seconds_total",
                description="route instance busy seconds by surface: the basis for cost attribution",
                kind=pb_utils.MetricFamily.COUNTER,
            ),
        }
        self._metrics: dict[tuple, object] = {}

    def surface_of(self, request) -> str:
        """The request's surface (the default when it names none); unknown is INVALID_ARG.

        A request names it in the parameter `surface`, or in the HTTP header / gRPC
        metadata `marquee-surface`, which the gateway's quotas key on and Triton forwards
        as a parameter of the same name (`--*-header-forward-pattern`). Both present and
        different is refused: a caller could otherwise pass the gateway under one
        surface's quota and be counted under another."""
        parameters = request_parameters(request)
        named = parameters.get("surface")
        # HTTP header names are case-insensitive, and Triton forwards them as sent.
        header = next((value for key, value in parameters.items() if key.lower() == SURFACE_HEADER), None)
        for field, value in (("parameter `surface`", named), (f"header `{SURFACE_HEADER}`", header)):
            if value is not None and not isinstance(value, str):
                raise RouteInputError(f"{field}={value!r}; must be a string")
        if named is not None and header is not None and named != header:
            raise RouteInputError(
                f"parameter `surface`={named!r} and header `{SURFACE_HEADER}`={header!r} differ; send one, or the same"
            )
        named = named if named is not None else header
        try:
            return self.surfaces.get(named).name
        except KeyError as error:
            self._count(INVALID_SURFACE, "error", "input")
            raise RouteInputError(str(error.args[0])) from None

    @staticmethod
    def quota_buckets(surfaces, instances: int, clock=time.monotonic) -> dict[str, TokenBucket]:
        """One bucket per surface with a quota. Each instance is a process of its own with
        its own buckets, so it enforces its share: quota / instances."""
        return {
            surface.name: TokenBucket(
                surface.quota_rps / instances, surface.quota_rps * QUOTA_BURST_S / instances, clock
            )
            for surface in surfaces.by_name.values()
            if surface.quota_rps > 0
        }

    def admit(self, surface: str) -> None:
        """Take one request from the surface's quota; QuotaExceeded when it has none left."""
        bucket = self.quotas.get(surface)
        if bucket is not None and not bucket.take():
            raise QuotaExceeded(surface, self.surfaces.get(surface).quota_rps, bucket.wait_s())

    def record(self, call: RouteCall | None, outcome: str, reason: str) -> None:
        if call is None:  # the surface itself was refused; counted in surface_of
            return
        cohort = self._cohort(call)
        self._count(call.surface, outcome, reason, cohort)
        if outcome == "refused":  # no work was done: keep it out of latency, cost and guardrails
            return
        elapsed = call.clock.elapsed_s()
        self._metric("duration", call.surface, cohort).observe(elapsed)
        self._metric("compute", call.surface, cohort).increment(elapsed)
        for stage, ms in call.clock.ms.items():
            if stage in self.stages:
                self._metric("stage", call.surface, cohort, stage).observe(ms / 1000.0)
        if self.on_record is not None:
            try:
                self.on_record(call, outcome, elapsed)
            except Exception as error:  # noqa: BLE001 - a watcher's fault must not fail the answered request
                pb_utils.Logger.log_error(f"{self.route}: on_record failed: {error!r}\n{traceback.format_exc()}")

    def _cohort(self, call: RouteCall | None) -> str:
        if not self.cohorts:
            return ""
        return call.cohort if call is not None and call.cohort in self.cohorts else self.cohorts[0]

    def _count(self, surface: str, outcome: str, reason: str, cohort: str = "") -> None:
        self._metric("requests", surface, cohort or self._cohort(None), outcome, reason).increment(1)

    def _metric(self, kind: str, surface: str, cohort: str, *rest: str):
        key = (kind, surface, cohort, *rest)
        if key not in self._metrics:
            labels = {"route": self.route, "surface": surface}
            if self.cohorts:
                labels["cohort"] = cohort
            if kind == "stage":
                labels["stage"] = rest[0]
            elif kind == "requests":
                labels.update(outcome=rest[0], reason=rest[1])
            family = self.families[kind]
            histogram = kind in ("duration", "stage")
            self._metrics[key] = (
                family.Metric(labels=labels, buckets=DURATION_BUCKETS) if histogram else family.Metric(labels=labels)
            )
        return self._metrics[key]


class TokenBucket:
    """`rate` tokens a second, at most `depth` saved up; one request takes one token."""

    def __init__(self, rate: float, depth: float, clock=time.monotonic):
        self.rate = rate
        self.depth = max(1.0, depth)
        self.clock = clock
        self.tokens = self.depth
        self.updated = clock()

    def take(self) -> bool:
        self._refill()
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    def wait_s(self) -> float:
        """How long until the next token."""
        self._refill()
        return max(0.0, (1.0 - self.tokens) / self.rate)

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.depth, self.tokens + (now - self.updated) * self.rate)
        self.updated = now


# -- downstream calls -------------------------------------------------------------


class Downstream:
    """BLS calls to other models, each with a deadline.

    Why `asyncio.wait` and not `wait_for`: on timeout `wait_for` also waits for the
    cancelled call to wind down, which for an in-flight BLS request means waiting for
    the slow model. Here a late call is abandoned: it finishes in the background and its
    result is dropped, and the route answers on time.
    """

    def __init__(self) -> None:
        self._abandoned: set[asyncio.Future] = set()

    async def call(
        self, model: str, inputs: list, outputs: list[str], budget_s: float, version: int = -1
    ) -> dict[str, np.ndarray]:
        request = pb_utils.InferenceRequest(
            model_name=model,
            model_version=version,
            inputs=inputs,
            requested_output_names=outputs,
            # Lets Triton drop the request if it is still queued when the budget is gone.
            timeout=max(1, int(budget_s * 1_000_000)),
            # A GPU instance (DALI, TensorRT) would otherwise answer in GPU memory, which
            # as_numpy() cannot read; routes do their own work on the CPU.
            preferred_memory=pb_utils.PreferredMemory(pb_utils.TRITONSERVER_MEMORY_CPU, 0),
        )
        call = asyncio.ensure_future(request.async_exec())
        done, _ = await asyncio.wait({call}, timeout=budget_s)
        if not done:
            self._abandoned.add(call)
            call.add_done_callback(self._abandoned.discard)
            raise StageFailed(model, f"over its {budget_s * 1000:.0f} ms budget")
        try:
            response = call.result()
        except Exception as error:  # noqa: BLE001 - any BLS failure is the stage's failure
            raise StageFailed(model, f"failed: {error or type(error).__name__}") from None
        if response.has_error():
            error = response.error()
            invalid = error.code() == pb_utils.TritonError.INVALID_ARG
            raise StageFailed(model, f"{'refused' if invalid else 'failed'}: {error.message()}", invalid_input=invalid)
        # Copied out of the response's shared memory, which is released with the response.
        return {name: np.array(pb_utils.get_output_tensor_by_name(response, name).as_numpy()) for name in outputs}


async def gather_bounded(calls: list[Awaitable], in_flight: int) -> list:
    """Await calls with at most `in_flight` of them issued at a time, results in order.

    Why: a route that splits a large request into many chunks for one model would
    otherwise queue them all at once, and the last chunk's deadline would run out while
    it waits behind the others. Issued a few at a time, each call's deadline covers its
    own work, and the model's instances stay busy."""
    gate = asyncio.Semaphore(in_flight)

    async def one(call):
        async with gate:
            return await call

    return list(await asyncio.gather(*(one(call) for call in calls)))


# -- timing -----------------------------------------------------------------------


class StageClock:
    """Milliseconds spent per stage of one request, and the time left of its budget."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = self.ms.get(name, 0.0) + (time.perf_counter() - start) * 1000.0

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started

    def remaining_s(self, total_s: float) -> float:
        return max(0.0, total_s - self.elapsed_s())

    def rounded(self) -> dict[str, float]:
        return {**{k: round(v, 2) for k, v in self.ms.items()}, "total": round(self.elapsed_s() * 1000.0, 2)}


# -- files re-read while serving ------------------------------------------------------

Parsed = TypeVar("Parsed")


class ReloadingFile(Generic[Parsed]):
    """A file of the route's version folder that operators change while it serves (an
    experiment, a policy), re-read whenever its mtime or size changes.

    No file: `current()` is None. A file that fails to parse keeps the previous value in
    force, and `last_error` says why until a good file arrives (log it once: the bad
    stamp is remembered, so the file is not re-parsed on every request). The stat is
    cached for `recheck_s`, so most requests cost no system call. `changed` is True
    right after a reload replaced the value.
    """

    def __init__(self, path: str, parse: Callable[[bytes, str], Parsed], what: str, recheck_s: float = 0.25):
        self.path = path
        self.parse = parse
        self.what = what
        self.recheck_s = recheck_s
        self._value: Parsed | None = None
        self._stamp: tuple | None = None
        self._checked_at = -math.inf
        self.last_error: str | None = None
        self.changed = False

    def current(self) -> Parsed | None:
        now = time.monotonic()
        self.changed = False
        if now - self._checked_at < self.recheck_s:
            return self._value
        self._checked_at = now
        try:
            stat = os.stat(self.path)
            stamp = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            self._reload(stamp)
        return self._value

    def _reload(self, stamp: tuple | None) -> None:
        if stamp is None:
            self._value, self._stamp, self.last_error, self.changed = None, None, None, True
            return
        try:
            with open(self.path, "rb") as f:
                value = self.parse(f.read(), self.path)
        except (OSError, ValueError) as error:
            self._stamp = stamp
            self.last_error = f"{self.what} not reloaded, previous one kept: {error}"
            return
        self._value, self._stamp, self.last_error, self.changed = value, stamp, None, True


# -- composed models ----------------------------------------------------------------


class Dependencies:
    """Whether the models a route composes are loaded, rechecked every few seconds.

    A route whose composed model is missing still loads and answers, but says so: the
    caller sees a reason in the response, `marquee_route_dependency_ready{route,model}`
    is 0 on Triton's /metrics, and the server log has a warning when the state changes.
    """

    def __init__(self, route: str, models: list[str], recheck_s: float = DEPENDENCY_RECHECK_S):
        self.route = route
        self.models = list(dict.fromkeys(models))
        self.recheck_s = recheck_s
        self._checked_at = -float("inf")
        self._missing: list[str] | None = None
        # Keep the family referenced: Triton refuses metrics whose family was collected.
        self._family = pb_utils.MetricFamily(
            name="marquee_route_dependency_ready",
            description="1 if a model that a route composes is loaded and ready, else 0",
            kind=pb_utils.MetricFamily.GAUGE,
        )
        self._gauges = {m: self._family.Metric(labels={"route": route, "model": m}) for m in self.models}

    def missing(self) -> list[str]:
        """The composed models that are not ready now (cached for `recheck_s`)."""
        now = time.monotonic()
        if self._missing is None or now - self._checked_at >= self.recheck_s:
            self._checked_at = now
            missing = [m for m in self.models if not _ready(m)]
            for model, gauge in self._gauges.items():
                gauge.set(0.0 if model in missing else 1.0)
            if missing != self._missing:
                self._log_change(missing)
            self._missing = missing
        return self._missing

    def reason(self) -> str:
        """'' when every composed model is ready, else what is missing."""
        missing = self.missing()
        return f"not loaded: {', '.join(missing)}" if missing else ""

    def _log_change(self, missing: list[str]) -> None:
        if missing:
            pb_utils.Logger.log_warn(f"{self.route}: composed model(s) not loaded: {', '.join(missing)}")
        elif self._missing:
            pb_utils.Logger.log_info(f"{self.route}: every composed model is loaded again")


def _ready(model: str) -> bool:
    try:
        return bool(pb_utils.is_model_ready(model_name=model))
    except Exception:  # noqa: BLE001 - an unknown model is simply not ready
        return False
