"""A thin typed wrapper over tritonclient for one model spec: sync and asyncio, gRPC or HTTP.

What it adds to tritonclient: inputs checked against the spec before sending, explicit
timeouts, and Marquee's own exceptions (see `marquee.errors`):
- InputValidationError: the request does not match the spec (nothing was sent);
- InferenceTimeoutError: no answer within `timeout_s`;
- ServerUnavailableError: no server at the URL (or a failed TLS handshake);
- ModelNotReadyError: the server does not have the model loaded;
- QuotaExceededError: the request's surface is over its quota; retry after its wait;
- InferenceError: the server rejected or failed the request.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np

from clients.errors import translate
from clients.validation import validate_inputs
from marquee.errors import InferenceError, ServerUnavailableError
from marquee.specs.base import ModelSpec
from marquee.surfaces import SURFACE_HEADER

Protocol = Literal["grpc", "http"]
DEFAULT_URLS = {"grpc": "localhost:8001", "http": "localhost:8000"}
# A CA file here turns on TLS for every gRPC client that is not given `tls_ca`, so the
# CLI commands and scripts reach a TLS server without a flag each.
TLS_CA_ENV = "MARQUEE_GRPC_TLS_CA"


def _module(protocol: Protocol, asynchronous: bool):
    if protocol == "grpc":
        if asynchronous:
            import tritonclient.grpc.aio as module
        else:
            import tritonclient.grpc as module
    elif protocol == "http":
        if asynchronous:
            import tritonclient.http.aio as module
        else:
            import tritonclient.http as module
    else:
        raise ValueError(f"protocol={protocol!r}; allowed: 'grpc', 'http'")
    return module


class _ModelClientBase:
    _asynchronous = False

    def __init__(
        self,
        spec: ModelSpec,
        url: str | None = None,
        protocol: Protocol = "grpc",
        timeout_s: float = 5.0,
        priority: int = 0,
        tls_ca: str | Path | None = None,
        surface: str | None = None,
    ):
        """tls_ca: PEM file of the CA that signed the server's gRPC certificate; connects
        over TLS (default: $MARQUEE_GRPC_TLS_CA when set, else plaintext).
        surface: the product surface the requests come from (policies/surfaces.yaml), sent
        as the request parameter `surface`; routes label metrics and enforce quotas by it,
        and refuse an unknown one. None: the route's default surface."""
        if timeout_s <= 0:
            raise ValueError(f"timeout_s={timeout_s}; must be > 0")
        if priority < 0:
            raise ValueError(f"priority={priority}; must be >= 0 (0: the model's default, 1: most urgent)")
        self.spec = spec
        # Triton's request priority; honoured by models whose dynamic batching has
        # priority_levels (batch jobs send a low priority so interactive pages go first).
        self.priority = priority
        self.protocol = protocol
        self.url = url or DEFAULT_URLS.get(protocol, "")
        self.timeout_s = timeout_s
        self.tls_ca = _tls_ca(protocol, tls_ca)
        if surface is not None and (not isinstance(surface, str) or not surface):
            raise ValueError(f"surface={surface!r}; must be a surface name from policies/surfaces.yaml, or None")
        self.surface = surface
        self._tc = _module(protocol, self._asynchronous)
        self._client = self._connect()

    def _connect(self):
        if self.protocol == "grpc":
            if self.tls_ca is None:
                return self._tc.InferenceServerClient(self.url)
            return self._tc.InferenceServerClient(self.url, ssl=True, root_certificates=str(self.tls_ca))
        if self._asynchronous:  # aiohttp: one total timeout per request
            return self._tc.InferenceServerClient(self.url, conn_timeout=self.timeout_s)
        return self._tc.InferenceServerClient(
            self.url, connection_timeout=self.timeout_s, network_timeout=self.timeout_s
        )

    def _request(self, inputs: dict[str, object], parameters: dict | None = None) -> tuple[list, list, dict]:
        arrays = validate_inputs(self.spec, inputs)
        infer_inputs = []
        for tensor in self.spec.inputs:
            array = arrays[tensor.name]
            infer_input = self._tc.InferInput(tensor.name, list(array.shape), tensor.dtype.wire_name)
            infer_input.set_data_from_numpy(array)
            infer_inputs.append(infer_input)
        outputs = [self._tc.InferRequestedOutput(t.name) for t in self.spec.outputs]
        options: dict = {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}
        if self.priority:
            options["priority"] = self.priority
        request_parameters = {**({"surface": self.surface} if self.surface else {}), **(parameters or {})}
        if request_parameters:
            options["parameters"] = request_parameters
        if self.surface:
            # The parameter reaches the route on any Triton; the header is what a gateway's
            # per-surface quota keys on (the route checks that the two agree).
            options["headers"] = {SURFACE_HEADER: self.surface}
        return infer_inputs, outputs, options

    def _outputs(self, result) -> dict[str, np.ndarray]:
        return {t.name: result.as_numpy(t.name) for t in self.spec.outputs}

    def _translate(self, error: BaseException) -> InferenceError:
        """Marquee's error for `error`; an unreachable gRPC server gets a TLS hint, since
        a TLS mismatch reaches the client as a plain UNAVAILABLE."""
        translated = translate(error, self.spec.name, self.url)
        if isinstance(translated, ServerUnavailableError) and self.protocol == "grpc":
            hint = _tls_hint(str(error), self.url, self.tls_ca)
            if hint:
                return type(translated)(f"{translated}; {hint}")
        return translated


def _tls_ca(protocol: Protocol, tls_ca: str | Path | None) -> Path | None:
    if tls_ca is None:
        from_env = os.environ.get(TLS_CA_ENV)
        if not from_env or protocol != "grpc":  # the variable is global; HTTP ignores it
            return None
        tls_ca, field = from_env, f"${TLS_CA_ENV}"
    else:
        field = "tls_ca"
        if protocol != "grpc":
            raise ValueError(
                f"tls_ca={str(tls_ca)!r} with protocol={protocol!r}: TLS is for gRPC only "
                "(Triton's HTTP endpoint has no TLS; put a TLS proxy in front of it)"
            )
    path = Path(tls_ca)
    if not path.is_file():
        raise ValueError(f"{field}={str(tls_ca)!r}: no such file (expected the PEM certificate of a CA)")
    return path


def _tls_hint(message: str, url: str, tls_ca: Path | None) -> str:
    lowered = message.lower()
    if tls_ca is not None and ("handshake" in lowered or "ssl" in lowered or "tls" in lowered):
        return (
            f"TLS handshake with {url} failed: check that the server serves gRPC over TLS and that "
            f"tls_ca={str(tls_ca)!r} is the CA that signed its certificate for this host name"
        )
    if tls_ca is None and "socket closed" in lowered:
        return f"if the server uses TLS, pass tls_ca=CA_FILE (or set ${TLS_CA_ENV})"
    return ""


class ModelClient(_ModelClientBase):
    """Blocking client for one model."""

    def infer(self, parameters: dict | None = None, **inputs: object) -> dict[str, np.ndarray]:
        """`parameters`: request parameters besides `surface` (a route's options)."""
        infer_inputs, outputs, options = self._request(inputs, parameters)
        try:
            result = self._client.infer(self.spec.name, infer_inputs, outputs=outputs, **options)
        except Exception as error:  # noqa: BLE001 - translated into our own hierarchy
            raise self._translate(error) from error
        return self._outputs(result)

    def is_ready(self) -> bool:
        try:
            return bool(self._client.is_model_ready(self.spec.name))
        except Exception:  # noqa: BLE001 - unreachable server means "not ready"
            return False

    def close(self) -> None:
        self._client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncModelClient(_ModelClientBase):
    """asyncio client for one model; use `async with`."""

    _asynchronous = True

    async def infer(self, parameters: dict | None = None, **inputs: object) -> dict[str, np.ndarray]:
        infer_inputs, outputs, options = self._request(inputs, parameters)
        try:
            result = await self._client.infer(self.spec.name, infer_inputs, outputs=outputs, **options)
        except Exception as error:  # noqa: BLE001
            raise self._translate(error) from error
        return self._outputs(result)

    async def is_ready(self) -> bool:
        try:
            return bool(await self._client.is_model_ready(self.spec.name))
        except Exception:  # noqa: BLE001
            return False

    async def close(self) -> None:
        await self._client.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
