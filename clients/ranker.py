"""Typed clients for the ranker: score candidate rows, get click probabilities back."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from clients.base import AsyncModelClient, ModelClient, Protocol
from marquee.specs.base import Precision
from marquee.specs.ranker import CATEGORICAL_FEATURES, DENSE_FEATURES, RANKER_BY_PRECISION

__all__ = ["AsyncRankerClient", "RankerClient", "CATEGORICAL_FEATURES", "DENSE_FEATURES"]


def _spec(precision: Precision | str):
    try:
        return RANKER_BY_PRECISION[Precision(precision)]
    except ValueError:
        allowed = ", ".join(p.value for p in RANKER_BY_PRECISION)
        raise ValueError(f"precision={precision!r}; allowed: {allowed}") from None


class RankerClient(ModelClient):
    """`score(categorical, dense)` -> click probability per row, shape [batch].

    categorical: int64 [batch, 6], columns as `CATEGORICAL_FEATURES`
    dense:       float32 [batch, 6], columns as `DENSE_FEATURES`
    """

    def __init__(
        self,
        url: str | None = None,
        protocol: Protocol = "grpc",
        precision: Precision | str = Precision.FP32,
        timeout_s: float = 2.0,
        priority: int = 0,
        model: str | None = None,
        tls_ca: str | Path | None = None,
        surface: str | None = None,
    ):
        """model: another deployment of the same ranker (a batch-only copy, say).
        tls_ca: CA file for a gRPC server with TLS (see `ModelClient`)."""
        spec = _spec(precision)
        if model:
            spec = dataclasses.replace(spec, name=model)
        super().__init__(spec, url, protocol, timeout_s, priority, tls_ca=tls_ca, surface=surface)

    def score(self, categorical: np.ndarray, dense: np.ndarray) -> np.ndarray:
        return self.infer(categorical=categorical, dense=dense)["probability"][:, 0]


class AsyncRankerClient(AsyncModelClient):
    """asyncio twin of `RankerClient`."""

    def __init__(
        self,
        url: str | None = None,
        protocol: Protocol = "grpc",
        precision: Precision | str = Precision.FP32,
        timeout_s: float = 2.0,
        priority: int = 0,
        tls_ca: str | Path | None = None,
        surface: str | None = None,
    ):
        super().__init__(_spec(precision), url, protocol, timeout_s, priority, tls_ca=tls_ca, surface=surface)

    async def score(self, categorical: np.ndarray, dense: np.ndarray) -> np.ndarray:
        return (await self.infer(categorical=categorical, dense=dense))["probability"][:, 0]
