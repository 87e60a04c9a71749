"""Thin, typed tritonclient clients, one per route, built from the model specs."""

from clients.base import AsyncModelClient, ModelClient
from clients.ranker import AsyncRankerClient, RankerClient
from clients.recommend import AsyncRecommendClient, Recommendation, RecommendClient, RecommendedItem

__all__ = [
    "AsyncModelClient",
    "AsyncRankerClient",
    "AsyncRecommendClient",
    "ModelClient",
    "RankerClient",
    "RecommendClient",
    "Recommendation",
    "RecommendedItem",
]
