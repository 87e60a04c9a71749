"""Thin, typed tritonclient clients, one per route, built from the model specs."""

from clients.base import AsyncModelClient, ModelClient
from clients.ranker import AsyncRankerClient, RankerClient

__all__ = ["AsyncModelClient", "AsyncRankerClient", "ModelClient", "RankerClient"]
