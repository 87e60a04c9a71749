"""Typed clients for the moderation routes: many texts (or images) in one request, one
`ModerationResult` per item, parsed from the route's audit JSON.

    with ModerationClient("localhost:8001") as client:
        for result in client.moderate_text(["hello", "you idiot"]):
            print(result.decision, result.reasons)

A `ModerationResult` with decision "error" means the route could not judge that one item;
`result.error` says why and `result.error_kind` which kind of failure it was: "input" (the
item is unusable: empty text, invalid UTF-8, a corrupt image; do not retry) or "model" (a
model failed, ran late or is not loaded; a retry may succeed). Routes older than error
kinds leave it None. Request-level failures raise Marquee's errors (see `clients.base`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clients.base import AsyncModelClient, ModelClient, Protocol
from marquee.errors import InferenceError, InputValidationError
from marquee.specs.moderation_image import LIMITS, MODERATE_IMAGE
from marquee.specs.moderation_text import MAX_TEXTS, MODERATE_TEXT

__all__ = ["AsyncModerationClient", "ModerationClient", "ModerationResult"]

DECISIONS = ("allow", "review", "block", "error")


@dataclass(frozen=True)
class ModerationResult:
    decision: str  # allow | review | block | error
    reasons: tuple[str, ...] = ()
    scores: dict[str, float] = field(default_factory=dict)
    policy_version: str | None = None
    policy_sha256: str | None = None
    error: str | None = None  # set when decision == "error"
    error_kind: str | None = None  # "input" | "model" when decision == "error"; None from older routes
    audit: dict = field(default_factory=dict)  # everything the route wrote, stages included
    audit_json: str = ""  # verbatim, for storing next to the decision

    @property
    def is_error(self) -> bool:
        return self.decision == "error"

    @classmethod
    def from_wire(cls, route: str, index: int, decision: bytes | str, audit: bytes | str) -> ModerationResult:
        decision_text = decision.decode() if isinstance(decision, bytes) else str(decision)
        audit_text = audit.decode() if isinstance(audit, bytes) else str(audit)
        try:
            parsed = json.loads(audit_text)
        except json.JSONDecodeError as error:
            raise InferenceError(f"{route}: audit[{index}] is not JSON ({error}): {audit_text[:200]!r}") from None
        if not isinstance(parsed, dict):
            raise InferenceError(f"{route}: audit[{index}] is {type(parsed).__name__}; expected a JSON object")
        if decision_text not in DECISIONS:
            raise InferenceError(f"{route}: decision[{index}]={decision_text!r}; expected one of {DECISIONS}")
        return cls(
            decision=decision_text,
            reasons=tuple(parsed.get("reasons") or ()),
            scores={k: float(v) for k, v in (parsed.get("scores") or {}).items()},
            policy_version=parsed.get("policy_version"),
            policy_sha256=parsed.get("policy_sha256"),
            error=parsed.get("error"),
            error_kind=parsed.get("error_kind"),
            audit=parsed,
            audit_json=audit_text,
        )


def _text_tensor(texts: Sequence[str]) -> np.ndarray:
    if isinstance(texts, str | bytes):
        raise InputValidationError("moderate_text: texts must be a list of str, got a single string; wrap it: [text]")
    if len(texts) == 0:
        raise InputValidationError("moderate_text: texts is empty; send at least one text")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputValidationError(f"moderate_text: texts[{index}] is {type(text).__name__}; allowed: str")
    # Strings go as UTF-8 bytes: the route rejects invalid UTF-8 per item, not per request.
    return np.array([text.encode("utf-8") for text in texts], dtype=np.object_)


def _image_tensor(images: Sequence[bytes]) -> np.ndarray:
    if isinstance(images, bytes | bytearray):
        raise InputValidationError("moderate_image: images must be a list of bytes, got one bytes object; wrap it")
    if len(images) == 0:
        raise InputValidationError("moderate_image: images is empty; send at least one image")
    for index, image in enumerate(images):
        if not isinstance(image, bytes | bytearray | memoryview):
            raise InputValidationError(
                f"moderate_image: images[{index}] is {type(image).__name__}; allowed: encoded JPEG/PNG bytes"
            )
    return np.array([bytes(image) for image in images], dtype=np.object_)


def _results(route: str, n_items: int, outputs: dict[str, np.ndarray]) -> list[ModerationResult]:
    decisions, audits = outputs["decision"].reshape(-1), outputs["audit"].reshape(-1)
    if len(decisions) != n_items or len(audits) != n_items:
        raise InferenceError(
            f"{route}: sent {n_items} items, got {len(decisions)} decisions and {len(audits)} audits back"
        )
    return [ModerationResult.from_wire(route, i, d, a) for i, (d, a) in enumerate(zip(decisions, audits, strict=True))]


def _chunks(tensor: np.ndarray, size: int) -> list[np.ndarray]:
    """The routes cap items per request (MAX_TEXTS, LIMITS.max_items); longer lists go in several."""
    return [tensor[start : start + size] for start in range(0, len(tensor), size)]


def _queued_texts(payloads: Sequence[bytes]) -> np.ndarray:
    # Queue items hold the text as UTF-8 already; invalid bytes reach the route, which
    # answers "error" for that item alone.
    return np.array([bytes(p) for p in payloads], dtype=np.object_)


class ModerationClient:
    """Blocking client for `moderate_text` and `moderate_image`.

    Longer lists than a route takes per request (256 texts, 64 images) are sent as several
    requests. text_model / image_model: another deployment of a route (an A/B variant, say).
    """

    def __init__(
        self,
        url: str | None = None,
        protocol: Protocol = "grpc",
        timeout_s: float = 10.0,
        text_model: str = MODERATE_TEXT.name,
        image_model: str = MODERATE_IMAGE.name,
        tls_ca: str | Path | None = None,
        surface: str | None = None,
    ):
        text = dataclasses.replace(MODERATE_TEXT, name=text_model)
        image = dataclasses.replace(MODERATE_IMAGE, name=image_model)
        self.text = ModelClient(text, url, protocol, timeout_s, tls_ca=tls_ca, surface=surface)
        self.image = ModelClient(image, url, protocol, timeout_s, tls_ca=tls_ca, surface=surface)

    def moderate_text(self, texts: Sequence[str]) -> list[ModerationResult]:
        return self._texts(_text_tensor(texts))

    def moderate_images(self, images: Sequence[bytes]) -> list[ModerationResult]:
        results = []
        for chunk in _chunks(_image_tensor(images), LIMITS.max_items):
            results += _results(self.image.spec.name, len(chunk), self.image.infer(image=chunk))
        return results

    def moderate(self, kind: str, payloads: Sequence[bytes]) -> list[ModerationResult]:
        """Queue items as stored (UTF-8 bytes for text); what the worker calls."""
        if kind == "text":
            return self._texts(_queued_texts(payloads))
        if kind == "image":
            return self.moderate_images(payloads)
        raise InputValidationError(f"kind={kind!r}; allowed: text, image")

    def _texts(self, tensor: np.ndarray) -> list[ModerationResult]:
        results = []
        for chunk in _chunks(tensor, MAX_TEXTS):
            results += _results(self.text.spec.name, len(chunk), self.text.infer(text=chunk))
        return results

    def close(self) -> None:
        self.text.close()
        self.image.close()

    def __enter__(self) -> ModerationClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncModerationClient:
    """asyncio twin of `ModerationClient`; use `async with`."""

    def __init__(
        self,
        url: str | None = None,
        protocol: Protocol = "grpc",
        timeout_s: float = 10.0,
        text_model: str = MODERATE_TEXT.name,
        image_model: str = MODERATE_IMAGE.name,
        tls_ca: str | Path | None = None,
        surface: str | None = None,
    ):
        text = dataclasses.replace(MODERATE_TEXT, name=text_model)
        image = dataclasses.replace(MODERATE_IMAGE, name=image_model)
        self.text = AsyncModelClient(text, url, protocol, timeout_s, tls_ca=tls_ca, surface=surface)
        self.image = AsyncModelClient(image, url, protocol, timeout_s, tls_ca=tls_ca, surface=surface)

    async def moderate_text(self, texts: Sequence[str]) -> list[ModerationResult]:
        results = []
        for chunk in _chunks(_text_tensor(texts), MAX_TEXTS):
            results += _results(self.text.spec.name, len(chunk), await self.text.infer(text=chunk))
        return results

    async def moderate_images(self, images: Sequence[bytes]) -> list[ModerationResult]:
        results = []
        for chunk in _chunks(_image_tensor(images), LIMITS.max_items):
            results += _results(self.image.spec.name, len(chunk), await self.image.infer(image=chunk))
        return results

    async def close(self) -> None:
        await self.text.close()
        await self.image.close()

    async def __aenter__(self) -> AsyncModerationClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
